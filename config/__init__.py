"""The supervisor's configuration: schema, loading (file, environment, flags) and validation.

A command that needs the configuration does::

    from config import ConfigError, EXIT_BAD_CONFIG, add_config_arguments, load_from_args

    add_config_arguments(parser)              # --config FILE and one flag per setting
    ...
    try:
        loaded = load_from_args(args)         # flags > environment > file > defaults
    except ConfigError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_BAD_CONFIG
    cfg = loaded.config                       # cfg.slurm.ssh.address, cfg.prices.cpu_per_min ...

``config.schema`` describes every setting once; ``config/example.yaml`` is the annotated example.
"""

from config.check import provider_address, summary, verify_offline
from config.errors import EXIT_BAD_CONFIG, ConfigError
from config.load import (
    LoadedConfig,
    Source,
    add_config_arguments,
    config_from_mapping,
    load,
    load_from_args,
)
from config.schema import (
    Benchmark,
    Chain,
    Config,
    CustomerUsers,
    Grpc,
    GrpcTls,
    Hpl,
    Ior,
    Log,
    Metrics,
    Osu,
    Prices,
    ReporterAuth,
    Sbatch,
    SbatchTls,
    Slurm,
    SlurmCommands,
    SlurmSsh,
    Speedtest,
    State,
    Ucx,
    Wallet,
)
from config.values import (
    EthAddress,
    HostPort,
    HttpUrl,
    ListenAddress,
    Secret,
    SshAddress,
    Wei,
    WsUrl,
    normalise_label,
)

__all__ = [
    "EXIT_BAD_CONFIG",
    "Benchmark",
    "Chain",
    "Config",
    "ConfigError",
    "CustomerUsers",
    "EthAddress",
    "Grpc",
    "GrpcTls",
    "HostPort",
    "Hpl",
    "HttpUrl",
    "Ior",
    "ListenAddress",
    "LoadedConfig",
    "Log",
    "Metrics",
    "Osu",
    "Prices",
    "ReporterAuth",
    "Sbatch",
    "SbatchTls",
    "Secret",
    "Slurm",
    "SlurmCommands",
    "SlurmSsh",
    "Source",
    "Speedtest",
    "SshAddress",
    "State",
    "Ucx",
    "Wallet",
    "Wei",
    "WsUrl",
    "add_config_arguments",
    "config_from_mapping",
    "load",
    "load_from_args",
    "normalise_label",
    "provider_address",
    "summary",
    "verify_offline",
]
