"""firmware_export: int8 conversion, TFLM verification and the C bundle for the device."""

from firmware_export.errors import ExportError

__all__ = ["build_bundle", "BuildReport", "ModelReport", "Calibration", "ExportError"]


def __getattr__(name: str):  # lazy: TensorFlow costs seconds to import
    if name == "build_bundle":
        from firmware_export.bundle import build_bundle

        return build_bundle
    if name in ("BuildReport", "ModelReport"):
        from firmware_export import report

        return getattr(report, name)
    if name == "Calibration":
        from firmware_export.convert import Calibration

        return Calibration
    raise AttributeError(name)
