"""Helpers of the pipeline tests (imported by name: keep the module name unique across tests/)."""


class ForwardCounter:
    """Counts forward passes of a backbone (image batches and text encodings)."""

    def __init__(self, backbone):
        self.images = 0
        self.texts = 0
        fwd, txt = backbone.compute_features, backbone.encode_text

        def compute_features(images, names):
            self.images += 1
            return fwd(images, names)

        def encode_text(prompts, *a, **k):
            self.texts += 1
            return txt(prompts, *a, **k)

        backbone.compute_features = compute_features
        backbone.encode_text = encode_text
