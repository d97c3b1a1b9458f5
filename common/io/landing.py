"""The embedded default dataset: where the generator lands its files and how ingest reads them.

`make demo` runs on files the synthetic generator writes under ``<storage.root>/raw``; without
`--inputs` (or `inputs:` in conf), ingest reads them through the dataset specs below, as it would
read a user's files. The generator imports the paths from here, never the other way round.
"""

from __future__ import annotations

from common.core.config import Config, CsvOptions, DatasetSpec, InputsConfig

RAW_DATASETS = ("telematics", "vehicles", "stations", "charger_status", "charging_sessions", "rollouts")
PAYD_MAPPING = "conf/datasets/payd_fleet.yaml"  # the dataset mapping a PAYD operator's export is read with


def raw_paths(cfg: Config) -> dict[str, str]:
    """Folder of each raw dataset the generator writes (<storage.root>/raw/<dataset>).

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    dict of str to str
        Dataset (RAW_DATASETS) -> folder.
    """
    raw = cfg.storage.path("raw.telematics").rsplit("/", 1)[0]
    return {k: f"{raw}/{k}" for k in RAW_DATASETS}


def default_inputs(cfg: Config) -> InputsConfig:
    """Dataset specs describing the generator's raw files.

    canonical layout: the contract's column names, timestamps as UTC instants. payd layout: the
    operator export is read exactly as a user would read it, through conf/datasets/payd_fleet.yaml
    with PAYD_FLEET_DIR pointing at the raw folder. Without the network files (generator.network
    false) only telematics and vehicles are listed, as in a telematics-only deployment.

    Parameters
    ----------
    cfg : Config
        `generator` (layout, output format, network) and `storage` (the raw folder).

    Returns
    -------
    InputsConfig
        One dataset per kind written.
    """
    g = cfg.generator
    raw = raw_paths(cfg)
    if g.layout == "payd":
        from common.core.config import load_dataset_files

        return load_dataset_files([PAYD_MAPPING], env={"PAYD_FLEET_DIR": raw["telematics"].rsplit("/", 1)[0]})
    iso = ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss[.SSS]XXX", "yyyy-MM-dd'T'HH:mm:ss[.SSS]"]
    specs = {
        "telematics": DatasetSpec(name="synthetic_telematics", path=raw["telematics"], format=g.output_format, timestamp_formats=iso, source_timezone="UTC"),
        "vehicles": DatasetSpec(name="synthetic_vehicles", path=raw["vehicles"], format="csv", csv=CsvOptions()),
    }
    if g.network:
        specs |= {
            "stations": DatasetSpec(name="synthetic_stations", path=raw["stations"], format="csv"),
            "charger_status": DatasetSpec(name="synthetic_charger_status", path=raw["charger_status"], format="csv", timestamp_formats=iso, source_timezone="UTC"),
            "charging_sessions": DatasetSpec(name="synthetic_charging_sessions", path=raw["charging_sessions"], format="json", timestamp_formats=iso, source_timezone="UTC"),
        }
    if g.network and g.rollout_share > 0:  # the generator writes a rollouts file only when it injects rollouts
        specs["rollouts"] = DatasetSpec(name="synthetic_rollouts", path=raw["rollouts"], format="csv", timestamp_formats=iso, source_timezone="UTC")
    return InputsConfig(**{k: [v] for k, v in specs.items()})
