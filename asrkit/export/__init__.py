"""Export outside the training stack: ONNX graphs of the encoder and one decoder step
(`onnx_export`, needs torch and onnx), and a decoder that runs them with ONNX Runtime and NumPy
alone (`onnx_runtime`, no torch import)."""
