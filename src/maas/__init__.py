"""maas: train, export, validate, register and serve models over the Open Inference Protocol."""

from maas.errors import ErrorCode, MaasError
from maas.signature import Signature, TensorSpec

__version__ = "0.1.0"

__all__ = ["ErrorCode", "MaasError", "Signature", "TensorSpec", "__version__"]
