"""unerase.config_layers: mappings keyed by names are replaced by an overriding config, not merged into."""
import yaml
from snakemake.utils import update_config

from conftest import ROOT
from unerase.config_layers import keyed_mappings, replace_keyed_mappings


def test_the_schema_names_the_keyed_mappings():
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
    assert set(keyed_mappings(schema)) == {("classes",), ("real_images",), ("erasure", "import", "paths"), ("erasure", "ablating", "anchors"),
                                           ("attacks", "concept_inversion", "guidance_scale_by_method")}


def test_the_last_layer_giving_a_keyed_mapping_replaces_it_and_blocks_still_merge():
    defaults = {"classes": {"zero": 0, "one": 1}, "esd": {"lr": 1.0, "steps": 300}, "by_method": {"fmn": 6.0}}
    first = {"classes": {"church": 497, "tench": 0}, "esd": {"lr": 0.5}}
    second = {"esd": {"steps": 1000}, "by_method": {"ac": 5.0}}
    merged = yaml.safe_load(yaml.safe_dump(defaults))
    for layer in (first, second):
        update_config(merged, layer)
    assert merged["classes"] == {"zero": 0, "one": 1, "church": 497, "tench": 0}  # what Snakemake alone gives
    replaced = replace_keyed_mappings(merged, [first, second], [("classes",), ("by_method",), ("absent",)])
    assert replaced == [("classes",), ("by_method",)]
    assert merged == {"classes": {"church": 497, "tench": 0}, "esd": {"lr": 0.5, "steps": 1000}, "by_method": {"ac": 5.0}}
    first["classes"]["golf_ball"] = 574  # a copy, not the layer's own mapping
    assert "golf_ball" not in merged["classes"]


def test_no_layer_giving_it_leaves_the_default_and_an_empty_mapping_empties_it():
    config = {"classes": {"zero": 0, "one": 1}, "real_images": {"zero": "/data/zero"}}
    assert replace_keyed_mappings(config, [{"seed": 3}], [("classes",)]) == []
    assert config["classes"] == {"zero": 0, "one": 1}
    replace_keyed_mappings(config, [{"real_images": {}}], [("real_images",)])
    assert config["real_images"] == {}
