#!/bin/sh
# GPU checks for the trainer (run from the repo root on a CUDA machine; OUT=folder for results).
# 1) a tiny trial per task on CUDA (bf16 autocast, channels_last, fused optimizers, NVML metering),
# 2) preemption + resume on CUDA, 3) the throughput benchmark (eager and torch.compile).
set -u
OUT=${OUT:-/tmp/trainer-gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/trainer_image:$PWD" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, torchvision, pynvml; print('torch', torch.__version__, 'transformers', transformers.__version__, 'tv', torchvision.__version__, torch.cuda.get_device_name(0))"
W=/tmp/trainer-gpu-work
rm -rf "$W"
for task in sst2 mrpc cifar10; do
  lr=2e-3; [ "$task" = cifar10 ] && lr=0.05
  python3 -m trainer train --task "$task" --learning-rate $lr --batch-size 32 --num-epochs 3 --preset tiny \
    --device cuda --output-dir "$W/$task" > "$OUT/tiny_$task.out" 2> "$OUT/tiny_$task.err"
  echo "tiny $task rc=$?"; tail -n 1 "$OUT/tiny_$task.out"
done
cp "$W/cifar10/metrics.json" "$OUT/metrics_cifar10.json"
A="--task sst2 --learning-rate 2e-3 --batch-size 32 --num-epochs 3 --preset tiny --device cuda"
python3 -m trainer train $A --output-dir "$W/cut" --stop-after-epoch 1 > /dev/null 2>&1; echo "stop rc=$?"
python3 -m trainer train $A --output-dir "$W/cut" 2>/dev/null | tail -n 1; echo "resumed (compare with tiny sst2 above)"
python3 -m trainer train $A --output-dir "$W/compiled" --compile 2>"$OUT/compile.err" | tail -n 1; echo "compiled tiny rc=$?"
timeout 200 python3 -m trainer bench --device cuda --shapes full --json "$OUT/bench_eager.json" 2>&1 | tail -n 4
timeout 240 python3 -m trainer bench --device cuda --shapes full --compile --json "$OUT/bench_compiled.json" 2>&1 | tail -n 4
nvidia-smi --query-gpu=name,power.draw,clocks.sm --format=csv
