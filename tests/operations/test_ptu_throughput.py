"""What a provisioned unit of each model serves, as the shipped catalog says (Microsoft's
provisioned-throughput docs): the operations page measures PTU deployments against it."""

from provisioning.catalog import PtuThroughput, ptu_throughput


def test_a_model_s_rates_per_unit_come_from_the_shipped_catalog():
    assert ptu_throughput(model_name="gpt-4o", model_version="2024-11-20") == PtuThroughput(2500, 833)
    # Only the input rate is published for gpt-4.1: output is a quarter of it (outputToInputRatio 4).
    assert ptu_throughput(model_name="gpt-4.1", model_version="2025-04-14") == PtuThroughput(3000, 750)


def test_another_version_of_a_known_model_shares_its_rates():
    assert ptu_throughput(model_name="gpt-4o", model_version="2099-01-01") == PtuThroughput(2500, 833)


def test_models_without_provisioned_throughput_have_none():
    assert ptu_throughput(model_name="text-embedding-3-small", model_version="1") is None
    assert ptu_throughput(model_name="no-such-model", model_version="1") is None
