"""How faithful is a map? Perturbation metrics, the randomisation sanity check and the pointing game.

Each metric is a function of a model, a batch of images in the model's
input units (for cnnlab networks, [0, 1] images), their maps (N, H, W) at
the input's resolution (larger = more important, negative allowed) and the
explained classes (default: the predicted ones), and reads the target's
softmax probability:

- `deletion` / `insertion` (Petsiuk et al., RISE, 2018): curves and their
  areas, onto a stated fill (`fill`);
- `road` (Rong et al., 2022, RemOve And Debias): most and least relevant first, with noisy
  linear imputation (`imputation`);
- `confidence_change` (Chattopadhay et al., Grad-CAM++): Average Drop and
  Increase in Confidence;
- `randomisation` (Adebayo et al., 2018): rank correlation with the maps of
  the model re-initialised from the top, cascading, on a deep copy;
- `pointing_game` (Zhang et al., 2016) against boxes or masks
  (`read_regions`).

`evaluate` runs them for any registered methods and returns a
`Faithfulness` table that ranks them, prints, and writes CSV, JSON and the
curves as a PNG; `plan_evaluation` is what ``cnnlab explain --evaluate``
calls. Names are imported on first use: the command line builds its
options from `settings` without loading scipy's solvers and statistics.
"""

import importlib

# name -> the module of this package that defines it
_EXPORTS = {
    "Plan": "api", "plan_evaluation": "api",
    "Curve": "causal", "deletion": "causal", "insertion": "causal",
    "ConfidenceResult": "confidence", "confidence_change": "confidence",
    "evaluate": "evaluation",
    "Fill": "fill", "parse_fill": "fill",
    "linear_imputation": "imputation", "noisy_linear_imputation": "imputation",
    "RandomisationResult": "model_randomisation", "cascade": "model_randomisation",
    "randomisation": "model_randomisation", "spearman": "model_randomisation",
    "pointing_game": "pointing", "read_regions": "pointing",
    "RoadResult": "remove_and_debias", "road": "remove_and_debias",
    "GROUPS": "settings", "METRICS": "settings", "Settings": "settings",
    "Faithfulness": "table",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
