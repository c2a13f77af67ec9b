"""`co-ssl-train` in-process: recipes (listing, expansion, precedence), the archs listing, and one-line
errors with exit code 2 for settings refused before training."""

from __future__ import annotations

import pytest

from co_ssl_train.cli import build_parser, expand_recipe, main
from co_ssl_train.config_args import config_from_args
from co_ssl_train.recipes import RECIPES, recipe_settings


def _config(argv: list[str]):
    return config_from_args(build_parser().parse_args(expand_recipe(["train", *argv])))


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("method", ["co-byol", "simclr", "co-mocov3", "dino", "co-vicreg", "bagssl", "byol-mc"])
def test_every_recipe_gives_a_valid_config_for_every_method(recipe, method):
    cfg = _config(["--recipe", recipe, "--method", method])
    assert cfg.method == method and cfg.recipe == recipe
    size = 224 if "imagenet" in recipe else 32
    resolved = cfg.resolved(cfg.image_size or size)
    assert resolved.image_size == size
    # every flag of the recipe reached the config
    for flag, value, _ in recipe_settings(recipe, method):
        if value is None:  # a switch: --name or --no-name
            assert getattr(cfg, flag.removeprefix("--no-").removeprefix("--").replace("-", "_")) is \
                (not flag.startswith("--no-")), flag
            continue
        field = flag[2:].replace("-", "_")
        assert str(getattr(cfg, field)) == value or float(getattr(cfg, field)) == float(value), flag


def test_flags_after_a_recipe_win_and_co_settings_only_go_to_co_methods():
    cfg = _config(["--recipe", "cifar10", "--lr", "0.123", "--epochs", "7"])
    assert (cfg.lr, cfg.epochs, cfg.dataset, cfg.ema, cfg.method) == (0.123, 7, "cifar10", 0.99, "co-byol")
    flags = [f for f, _, _ in recipe_settings("cifar10", "byol")]
    assert "--local-weight" not in flags and "--ema" in flags
    assert _config(["--recipe", "imagenet1k", "--method", "mocov3"]).temperature == 1.0


def test_recipes_command_prints_sources_and_the_exact_command(capsys):
    main(["recipes"])
    listing = capsys.readouterr().out
    assert all(name in listing for name in RECIPES)
    main(["recipes", "imagenet1k", "--method", "co-byol"])
    out = capsys.readouterr().out
    assert "BYOL paper" in out and "paper" in out and "ours" in out
    assert "co-ssl-train train --method co-byol --dataset imagefolder" in out


def test_archs_lists_the_receptive_fields(capsys):
    main(["archs"])
    out = capsys.readouterr().out
    for line in ("--rf 29  cifar stem: RF  29 px", "--rf 99  cifar stem: RF  99 px", "bagnet33           RF 33 px"):
        assert line in out


@pytest.mark.parametrize("argv,message", [
    (["--recipe", "cifar100"], "unknown recipe"),
    (["--method", "co-byol", "--arch", "rf_resnet18", "--rf", "44"], "cannot be reached"),
    (["--method", "simclr", "--local-crops", "4"], "multi-crop is offered for"),
])
def test_refused_settings_are_one_line_and_exit_code_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--dataset", "synthetic", "--width", "8", "--out", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message in err[0]
    assert not any(tmp_path.iterdir())
