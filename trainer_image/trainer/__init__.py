"""Trainer for Katib trials: BERT on GLUE SST-2/MRPC and ResNet-50 on CIFAR-10."""
