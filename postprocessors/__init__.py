"""OOD scores over cached features, one file per score family (installed as ``oodbench.postprocessors``).

Every built-in postprocessor (``@register("postprocessors", name)``), listed in :mod:`oodbench.manifest`:

=========================  ==========================================  ======================================
name                       class                                       needs
=========================  ==========================================  ======================================
``mcm``                    :class:`.mcm.MCM`                           image, text
``glmcm``                  :class:`.glmcm.GLMCM`                       image, local, text
``glmcm_logits``           :class:`.glmcm.GLMCMLogits`                 logits, local_logits
``neglabel``               :class:`.neglabel.NegLabel`                 image, class_names (+ a text encoder)
``csp``                    :class:`.csp.CSP`                           image, class_names (+ a text encoder)
``adaneg``                 :class:`.adaneg.AdaNeg` (test-time)         image, class_names, logit_scale (+ encoder)
``msp``                    :class:`.msp.MSP`                           logits
``energy``                 :class:`.energy.Energy`                     logits
``maxlogit``               :class:`.maxlogit.MaxLogit`                 logits
``react``                  :class:`.react.ReAct`                       penultimate, fc_weight, fc_bias
``dice``                   :class:`.dice.DICE`                         penultimate, fc_weight, fc_bias
``ash_p/ash_b/ash_s``      :class:`.ash.ASHP` / ``ASHB`` / ``ASHS``    penultimate, fc_weight, fc_bias
``knn``                    :class:`.knn.KNN`                           penultimate
=========================  ==========================================  ======================================

``oodbench.aps.aps`` (engine) is the hyperparameter search over a postprocessor's ``search_space``.
"""

from oodbench.postprocessors import (  # noqa: F401  (imported for registration)
    adaneg,
    ash,
    csp,
    dice,
    energy,
    glmcm,
    knn,
    maxlogit,
    mcm,
    msp,
    neglabel,
    react,
)
from oodbench.postprocessors.base import Postprocessor

__all__ = ["Postprocessor"]
