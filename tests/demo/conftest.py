import pytest


class TrunkCallCounter:
    """Counter of forward calls of a model's image trunk."""

    def __init__(self, model):
        self.calls = 0
        trunk = model.backbone.vision_backbone.trunk
        trunk.register_forward_hook(self._count)

    def _count(self, module, inputs, output):
        self.calls += 1


@pytest.fixture(scope="session")
def tiny_demo_models():
    """Random-weight tiny PE and tiny RADIO image models without the interactive predictor."""
    from sam3_radio.model.builder import build_sam3_image_model

    return {
        name: build_sam3_image_model(name, weights="random", device="cpu", interactive=False)
        for name in ("tiny-pe", "tiny-radio")
    }


@pytest.fixture(scope="session")
def trunk_counters(tiny_demo_models):
    return {name: TrunkCallCounter(model) for name, model in tiny_demo_models.items()}


@pytest.fixture(scope="session")
def make_runners(tiny_demo_models):
    """Return a factory of fresh runners over the shared tiny models, with their own cache."""
    from sam3_radio.demo.cache import FeatureCache
    from sam3_radio.demo.comparison import BackboneRunner

    def make(max_entries: int = 8):
        cache = FeatureCache(max_entries)
        return [BackboneRunner(name, model, cache) for name, model in tiny_demo_models.items()]

    return make
