"""The shipped real-footage x4 and x2 models on the held-out benchmark clips (the quick subset of
``python -m train.evaluate --suite real``): they must damp H.264 damage that the clean-trained models amplify,
without losing the clean-input gain over bicubic."""

from __future__ import annotations

import pytest
from conftest import shared_path

from train.realbench.sources import CONDITIONS, iter_sources
from train.realbench.suite import run_suite


def _models(scale: int) -> tuple[str, str, str, str]:
    return (f"compact-x{scale}", f"compact-x{scale}-psnr", f"compact-x{scale}-clean", f"compact-x{scale}-clean-psnr")


@pytest.fixture(scope="module", params=[4, 2], ids=["x4", "x2"])
def bench(request: pytest.FixtureRequest) -> dict:
    shared_path("clips")
    scale = request.param
    conditions = tuple(c for c in CONDITIONS if c.name in ("clean", "h264-crf32", "jpeg-q40", "noise-5"))
    result = run_suite(list(_models(scale)), scale, iter_sources(scale, quick=True, images=False), device="cpu",
                       conditions=conditions, log=lambda _: None, quick=True)
    return {"scale": scale} | {name: result["metrics"][name] for name in ("bicubic", *_models(scale))}


@pytest.mark.slow
@pytest.mark.parametrize(("condition", "bound"), [("h264-crf32", 0.97), ("jpeg-q40", 0.85), ("noise-5", 0.85)])
def test_real_footage_models_amplify_damage_less(bench: dict, condition: str, bound: float) -> None:
    real, real_psnr, clean, clean_psnr = _models(bench["scale"])
    gain = {m: bench[m][condition]["clips"]["gain"] for m in _models(bench["scale"])}
    # The bound is 1.1 (Real-ESRGAN's same-size video model: 1.04-1.30); the README gives how far each
    # model is from it. Here: a clear step down from the clean-trained models, for both real-footage models
    # (measured on this subset: CRF 32 1.31 / 1.36 against 1.44 / 1.43, JPEG 1.42 / 1.46 against 1.77 / 1.74,
    # noise 1.10 / 1.12 against 1.75 / 1.61).
    assert gain[real] < bound * gain[clean], gain
    assert gain[real_psnr] < bound * gain[clean_psnr], gain


@pytest.mark.slow
def test_real_footage_models_beat_bicubic_on_compressed_and_clean_clips(bench: dict) -> None:
    x2 = bench["scale"] == 2
    for cond in ("clean", "h264-crf32", "jpeg-q40", "noise-5"):
        base = bench["bicubic"][cond]["clips"]
        # x2's clean clips are nearly solved by bicubic (39.4 dB); the real-footage x2 pair, taught to leave alone
        # fine detail that may be damage, ties it there (measured: compact-x2 at its default strength 0.8 39.75 /
        # 0.9792, the GAN file alone 39.62 / 0.9778, L1 39.35 / 0.9810 against 39.43 / 0.9789) while beating it on
        # every damaged condition.
        slack_db, slack_ssim = (0.2, 0.003) if x2 and cond == "clean" else (0.0, 0.0)
        for model in _models(bench["scale"])[:2]:
            ours = bench[model][cond]["clips"]
            assert ours["psnr_y"] > base["psnr_y"] - slack_db, (model, cond, ours, base)
            assert ours["ssim_y"] > base["ssim_y"] - slack_ssim, (model, cond, ours, base)
            # x2 bicubic keeps more detail to begin with (x2 L1 model: 1.3-1.5x measured).
            assert ours["sharpness"] > (1.25 if x2 else 1.5) * base["sharpness"], (model, cond, ours, base)
