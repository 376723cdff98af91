#!/bin/sh
# GPU checks for the trainer. Run from the repo root on a CUDA machine; OUT=folder for the results.
#
# GPU_CHECK_PARTS (space-separated, default "trial bench"), in this priority order:
#   trial   the seed's trials through the real training path (python -m trainer.bench_trial_cli, issue 16):
#           per task eager and compiled (per-step time and compile time: the compile choice), then the
#           same trials under Hugging Face Trainer (text) and torchvision's reference recipe (CIFAR-10),
#           then the sharing sweep (TRIAL_SHARING concurrent trials on the GPU; MPS where present).
#           Results: trial.md + trial.json (GPU-s per epoch and trial, MFU, ratios, trials/hour per GPU).
#           All tasks eager first (every task's baseline, which the reference ratios need), then compiled.
#           Estimate on an H100: eager ~100 s, compiled ~220 s, references ~90 s, sharing 1,2,4,7 ~160 s
#           (twice with MPS): within the default budget the sharing sweep and the full-shape bench may be
#           cut; rerun them alone with GPU_CHECK_PARTS=bench or TRIAL_MODES=none (only references+sharing).
#   bench   throughput at several batch sizes (full shapes, synthetic batches, bf16): eager, torch.compile
#           mode "default", and a max-autotune-no-cudagraphs probe; torch.profiler tables at batch 256.
#   trials  a tiny trial per task on CUDA, preemption + resume, a compiled tiny trial (passed on an H100);
#           it runs after bench in the same budget: alone (GPU_CHECK_PARTS=trials) or with a larger budget.
# Every command runs under `timeout`, cut to what is left of GPU_CHECK_BUDGET_S (default 400 s): later
# steps shrink or are skipped, and a sweep cut short keeps the rows it finished (its JSON is rewritten
# after each one). The merge at the end has its own 60 s. Expected: about 5.5-7.5 minutes on an H100/H200
# (per-step estimate in docs/benchmarks.md, "Trainer throughput: against the 50% MFU target").
# $OUT gets at most 8 files: gpu_check.log (everything), trial.md + trial.json (trial-shaped rows),
# bench.md + bench.json (all full-shape throughput rows),
# profile.md + profile.json (top kernels and categories per profiled configuration), traces.tar
# (gzipped Chrome traces). The end of stdout is the summary: profile categories, then the table.
set -u
OUT=${OUT:-/tmp/trainer-gpu}
PARTS=${GPU_CHECK_PARTS:-trial bench}
BUDGET=${GPU_CHECK_BUDGET_S:-400}
BERT_SIZES=${BERT_SIZES:-64,128,256,512}
RESNET_SIZES=${RESNET_SIZES:-128,256,512}
BERT_COMPILE_SIZES=${BERT_COMPILE_SIZES:-256,512}
RESNET_COMPILE_SIZES=${RESNET_COMPILE_SIZES:-256,512}
COMPILE_MODE=${COMPILE_MODE:-default}
PROBE_MODE=${PROBE_MODE:-max-autotune-no-cudagraphs}
PROFILE_AT=${PROFILE_AT:-256}
# Plumbing check without a GPU: GPU_CHECK_DEVICE=cpu GPU_CHECK_SHAPES=tiny PYTHON=.venv/bin/python
DEVICE=${GPU_CHECK_DEVICE:-cuda}
SHAPES=${GPU_CHECK_SHAPES:-full}
# The trial-shaped part: tasks, one batch size each (the seed's larger one), timed steps, sharing counts.
TRIAL_TASKS=${TRIAL_TASKS:-sst2,mrpc,cifar10}
TRIAL_TEXT_BATCH=${TRIAL_TEXT_BATCH:-32}
TRIAL_VISION_BATCH=${TRIAL_VISION_BATCH:-64}
TRIAL_STEPS=${TRIAL_STEPS:-40}
TRIAL_SHARING=${TRIAL_SHARING:-1,2,4,7}
TRIAL_SHARING_TASK=${TRIAL_SHARING_TASK:-sst2}
TRIAL_PRESET=full
TRIAL_MODES=${TRIAL_MODES:-eager compiled}
TRIAL_COMPILE_LIMIT_S=${TRIAL_COMPILE_LIMIT_S:-150}
if [ "$SHAPES" = tiny ]; then # the CPU plumbing check: tiny models, few steps, no compile, two copies
  TRIAL_PRESET=tiny
  TRIAL_STEPS=${TRIAL_STEPS_TINY:-4}
  TRIAL_SHARING=${TRIAL_SHARING_TINY:-1,2}
  TRIAL_MODES=${TRIAL_MODES_TINY:-eager}
fi
PY=${PYTHON:-python3}
W=${TMPDIR:-/tmp}/trainer-gpu-work
LOG=$OUT/gpu_check.log
mkdir -p "$OUT"
rm -rf "$W"
mkdir -p "$W/profile"
: > "$LOG"
export PYTHONPATH="$PWD/trainer_image:$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
START=$(date +%s)

say() {
  echo "$*" | tee -a "$LOG"
}

# run NAME LIMIT_S COMMAND...: run COMMAND under timeout (LIMIT_S, cut to the budget left), output to the log
run() {
  name=$1
  limit=$2
  shift 2
  left=$((BUDGET - $(date +%s) + START))
  if [ "$left" -lt 30 ]; then
    say "== $name: skipped, ${left}s of the ${BUDGET}s budget left"
    return 0
  fi
  if [ "$limit" -gt "$left" ]; then
    limit=$left
  fi
  began=$(date +%s)
  say "== $name (limit ${limit}s): $*"
  timeout -k 10 "$limit" "$@" >> "$LOG" 2>&1
  rc=$?
  note=""
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    note=" (time limit)"
  fi
  say "== $name: rc=$rc in $(($(date +%s) - began))s$note"
}

wants() {
  case " $PARTS " in
    *" $1 "*) return 0 ;;
    *) return 1 ;;
  esac
}

run environment 60 "$PY" -c "import torch, transformers, torchvision; print('torch', torch.__version__, 'transformers', transformers.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,memory.total,power.draw,clocks.sm,clocks.max.sm --format=csv >> "$LOG" 2>&1

# trial_run NAME LIMIT_S JSON FLAGS...: the trial-shaped benchmark with the shared flags
trial_run() {
  name=$1
  limit=$2
  json=$3
  shift 3
  run "$name" "$limit" "$PY" -m trainer.bench_trial_cli --device "$DEVICE" --preset "$TRIAL_PRESET" \
    --steps "$TRIAL_STEPS" --work-dir "$W/trial-work" --json "$W/trial/$json" --quiet "$@"
}

if wants trial; then
  mkdir -p "$W/trial"
  text_tasks=$(echo "$TRIAL_TASKS" | tr ',' '\n' | grep -v cifar10 | paste -sd, -)
  vision=$(echo "$TRIAL_TASKS" | tr ',' '\n' | grep cifar10)
  n=0
  for mode in $TRIAL_MODES; do # eager first: the compiled rows add the compile time to the choice
    if [ "$mode" = none ]; then
      continue
    fi
    for task in $(echo "$TRIAL_TASKS" | tr ',' ' '); do
      n=$((n + 1))
      batch=$TRIAL_TEXT_BATCH
      if [ "$task" = cifar10 ]; then
        batch=$TRIAL_VISION_BATCH
      fi
      limit=120
      if [ "$mode" = compiled ]; then
        limit=$TRIAL_COMPILE_LIMIT_S
      fi
      trial_run "trial-$mode-$task" "$limit" "${n}_trial_${mode}_$task.json" --tasks "$task" --batch-sizes "$batch" \
        --modes "$mode" --references none
    done
  done
  if [ -n "$text_tasks" ]; then
    trial_run reference-hf 150 r1_hf.json --tasks "$text_tasks" --batch-sizes "$TRIAL_TEXT_BATCH" \
      --modes none --references hf
  fi
  if [ -n "$vision" ]; then
    trial_run reference-torchvision 150 r2_tv.json --tasks cifar10 --batch-sizes "$TRIAL_VISION_BATCH" \
      --modes none --references torchvision
  fi
  trial_run sharing 300 s1_sharing.json --sharing "$TRIAL_SHARING" --sharing-task "$TRIAL_SHARING_TASK" \
    --sharing-batch "$TRIAL_TEXT_BATCH" --modes none --references none
fi

if wants bench; then
  # Priority order: each later step matters less and is the first to lose its time.
  run eager-bert 120 "$PY" -m trainer bench --device "$DEVICE" --shapes "$SHAPES" --models bert --warmup 5 --steps 20 \
    --batch-sizes "$BERT_SIZES" --profile "$W/profile" --profile-batch-sizes "$PROFILE_AT" \
    --json "$W/1_eager_bert.json"
  run eager-resnet50 120 "$PY" -m trainer bench --device "$DEVICE" --shapes "$SHAPES" --models resnet50 --warmup 5 \
    --steps 20 --batch-sizes "$RESNET_SIZES" --profile "$W/profile" --profile-batch-sizes "$PROFILE_AT" \
    --json "$W/2_eager_resnet50.json"
  run "compile-$COMPILE_MODE-bert" 180 "$PY" -m trainer bench --device "$DEVICE" --shapes "$SHAPES" --models bert \
    --warmup 5 --steps 20 --compile-mode "$COMPILE_MODE" --batch-sizes "$BERT_COMPILE_SIZES" \
    --profile "$W/profile" --profile-batch-sizes "$PROFILE_AT" --json "$W/3_compile_bert.json"
  run "compile-$PROBE_MODE-bert" 150 "$PY" -m trainer bench --device "$DEVICE" --shapes "$SHAPES" --models bert \
    --warmup 5 --steps 20 --compile-mode "$PROBE_MODE" --batch-size "$PROFILE_AT" \
    --json "$W/4_probe_bert.json"
  run "compile-$COMPILE_MODE-resnet50" 180 "$PY" -m trainer bench --device "$DEVICE" --shapes "$SHAPES" \
    --models resnet50 --warmup 5 --steps 20 --compile-mode "$COMPILE_MODE" \
    --batch-sizes "$RESNET_COMPILE_SIZES" --profile "$W/profile" --profile-batch-sizes "$PROFILE_AT" \
    --json "$W/5_compile_resnet50.json"
fi

if wants trials; then
  for task in sst2 mrpc cifar10; do
    lr=2e-3
    if [ "$task" = cifar10 ]; then
      lr=0.05
    fi
    run "tiny-$task" 60 "$PY" -m trainer train --task "$task" --learning-rate "$lr" --batch-size 32 \
      --num-epochs 3 --preset tiny --device "$DEVICE" --output-dir "$W/$task"
  done
  run metrics-cifar10 10 cat "$W/cifar10/metrics.json"
  run preempt 60 "$PY" -m trainer train --task sst2 --learning-rate 2e-3 --batch-size 32 --num-epochs 3 \
    --preset tiny --device "$DEVICE" --output-dir "$W/cut" --stop-after-epoch 1
  run resume 60 "$PY" -m trainer train --task sst2 --learning-rate 2e-3 --batch-size 32 --num-epochs 3 \
    --preset tiny --device "$DEVICE" --output-dir "$W/cut"
  run tiny-compiled 120 "$PY" -m trainer train --task sst2 --learning-rate 2e-3 --batch-size 32 \
    --num-epochs 3 --preset tiny --device "$DEVICE" --output-dir "$W/compiled" --compile
fi

# Merge what finished (outside the budget, bounded on its own).
set --
for f in "$W"/trial/*.json; do
  if [ -f "$f" ]; then
    set -- "$@" --include "$f"
  fi
done
if [ "$#" -gt 0 ]; then
  timeout 60 "$PY" -m trainer.bench_trial_cli --report-only "$@" --json "$OUT/trial.json" \
    --command-label "trainer_image/gpu_check.sh (python -m trainer.bench_trial_cli --device $DEVICE --preset $TRIAL_PRESET --steps $TRIAL_STEPS ...)" \
    > "$OUT/trial.md" 2>> "$LOG"
fi
set --
for f in "$W"/*.json; do
  if [ -f "$f" ]; then
    set -- "$@" --include "$f"
  fi
done
if [ "$#" -gt 0 ]; then
  timeout 60 "$PY" -m trainer bench --report-only "$@" --json "$OUT/bench.json" \
    --command-label "trainer_image/gpu_check.sh (python -m trainer bench --device $DEVICE --shapes $SHAPES ...)" \
    > "$OUT/bench.md" 2>> "$LOG"
fi
if [ -f "$W/profile/profile.json" ]; then
  cp "$W/profile/profile.json" "$W/profile/profile.md" "$OUT/"
  (cd "$W/profile" && tar -cf "$OUT/traces.tar" ./*.trace.json.gz) >> "$LOG" 2>&1
  size=$(wc -c < "$OUT/traces.tar")
  if [ "$size" -gt 16000000 ]; then # a file over 16 MiB does not come back from the GPU machine
    (cd "$W/profile" && tar -cf "$OUT/traces.tar" ./*-eager.trace.json.gz) >> "$LOG" 2>&1
    say "== traces.tar was $size bytes: kept the eager traces only"
  fi
fi
nvidia-smi --query-gpu=name,power.draw,clocks.sm,temperature.gpu --format=csv >> "$LOG" 2>&1
say "== total $(($(date +%s) - START))s; results in $OUT: $(cd "$OUT" && echo ./*)"
grep -E '^== .*(rc=|skipped)' "$LOG"
if [ -f "$OUT/profile.md" ]; then
  grep -E '^(###|[0-9]+ profiled step|[|] [A-Za-z])' "$OUT/profile.md"
fi
if [ -f "$OUT/trial.md" ]; then
  grep -E '^([|]|MPS)' "$OUT/trial.md"
fi
if [ -f "$OUT/bench.md" ]; then
  grep '^|' "$OUT/bench.md"
fi
