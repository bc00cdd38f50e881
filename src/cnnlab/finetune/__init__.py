"""Transfer learning: a pretrained backbone, a new head for your classes, frozen or gradually unfrozen layers.

    result = finetune(data="folder:photos", backbone="efficientnet_lite0", epochs=3)
"""

from cnnlab.finetune.api import FinetuneJob, finetune, phases
from cnnlab.finetune.features import extract_features, headless
from cnnlab.finetune.freeze import apply_freeze, frozen_in_eval, parameter_groups, parse_freeze
from cnnlab.run import FinetuneOptions

__all__ = ["finetune", "FinetuneJob", "FinetuneOptions", "extract_features", "headless", "apply_freeze",
           "frozen_in_eval", "parameter_groups", "parse_freeze", "phases"]
