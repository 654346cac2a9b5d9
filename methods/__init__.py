"""Network modifiers and training methods (installed as ``oodbench.methods``)."""
