import pytest

from unerase.architecture import make_unet
from unerase.erasure.esd import ESD_METHODS, select_parameters


@pytest.fixture(scope="module")
def unet():
    return make_unet()


def test_esd_x_is_exactly_cross_attention(unet):
    names = [n for n, _ in unet.named_parameters()]
    chosen = select_parameters(unet, "esd-x")
    assert chosen and set(chosen) == {n for n in names if ".attn2." in n}
    # every cross-attention projection is in, for every transformer block
    assert {n.split(".attn2.")[1].split(".")[0] for n in chosen} == {"to_q", "to_k", "to_v", "to_out"}


def test_esd_u_is_everything_else_but_output_and_time(unet):
    names = [n for n, _ in unet.named_parameters()]
    chosen = set(select_parameters(unet, "esd-u"))
    assert chosen
    assert not any(".attn2." in n for n in chosen)
    assert not any(n.startswith(("conv_out.", "conv_norm_out.", "time_embedding.")) for n in chosen)
    rest = set(names) - chosen
    assert all(".attn2." in n or n.startswith(("conv_out.", "conv_norm_out.", "time_embedding.")) for n in rest)
    assert any(".attn1." in n for n in chosen) and any("resnets" in n for n in chosen)


def test_strict_and_all(unet):
    strict = select_parameters(unet, "esd-x-strict")
    assert strict and all(".attn2.to_k." in n or ".attn2.to_v." in n for n in strict)
    assert len(select_parameters(unet, "esd-all")) == len(list(unet.parameters()))


@pytest.mark.parametrize("bad", ["xattn", "noxattn", "ESD-X", ""])
def test_misspelled_method_is_an_error_not_an_empty_set(unet, bad):
    # The reference README's `--train_method xattn` silently trained nothing.
    with pytest.raises(ValueError, match="unknown ESD method"):
        select_parameters(unet, bad)


def test_esd_variants_are_registered():
    from unerase.erasure import METHODS

    assert {m for m, spec in METHODS.items() if spec.module == "esd"} == set(ESD_METHODS)
