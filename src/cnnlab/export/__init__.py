"""Export a run's model with its preprocessing folded in, as ONNX or TorchScript: [0, 1] images in, probabilities out.

    result = export_model("runs/demo", "onnx", dynamic_batch=True)   # runs/demo.onnx, checked against the run
    probabilities = run_exported(result.path, images)
"""

from cnnlab.export.api import FORMATS, ExportResult, export_model, run_exported

__all__ = ["FORMATS", "ExportResult", "export_model", "run_exported"]
