"""CNN descriptors: backbones, pooling of convolutional maps, batched and cached extraction (notebook 07)."""
