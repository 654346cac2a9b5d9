"""OOD scores over cached features, one file per score family (installed as ``oodbench.postprocessors``)."""
