"""Neural network modules only: tensors in, tensors out. No file I/O, no tokenizers."""
