"""Trainer for Katib trials: BERT on GLUE SST-2/MRPC and ResNet-50 on CIFAR-10."""

#: Heavy modules a long-lived launcher may import once and fork trials from (the client's warm
#: launcher reads this; see docs/client.md). Entries are "module" or "module:attribute" (to trigger
#: lazily imported classes). Only what a trial always or usually needs: not the Katib SDK (used by
#: --push-metrics only) and not `datasets` (full preset only).
PRELOAD_MODULES = (
    "numpy",
    "torch",
    "torch.nn.functional",
    "torch.utils.data",
    "torchvision.models.resnet",
    "PIL.Image",
    "prometheus_client",
    "transformers:BertConfig",
    "transformers:BertForSequenceClassification",
    "transformers:BertTokenizerFast",
    "transformers:AutoModelForSequenceClassification",
    "transformers:AutoTokenizer",
)
