"""The acoustic model: its network, features, training and int8 runtime."""
