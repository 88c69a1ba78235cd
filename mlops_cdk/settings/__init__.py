"""Typed, frozen, validated settings: the one place that holds every default.

Settings come from cdk.json context (see :mod:`mlops_cdk.settings.loader` for the order).
Only ``app.py`` calls :meth:`Settings.from_context`; everything else receives the frozen
section it needs as an argument. Adding a section is one module with its model plus one field
on :class:`Settings` (:mod:`mlops_cdk.settings.root`, which also holds the rules that span
sections).

    common.py     Section base, ConfigError, shared field types (log retention, instance types)
    storage.py, network.py, tracking.py, studio.py, pipelines.py   one module per section
    jobs.py, training.py, tuning.py, inference.py   the pipelines section's job settings
    root.py       Settings: every section, the cross-section rules
    loader.py     cdk.json + -c context -> Settings (DEFAULT_ENVIRONMENT, deep merge)
    errors.py     a ValidationError as one line naming the setting and where it was set
    cron.py       the EventBridge cron grammar (validation, fire times, runs per month)
"""

from mlops_cdk.settings.common import (
    LOG_RETENTION_DAYS,
    ConfigError,
    IntChoice,
    LogRetentionDays,
    Section,
    check_log_retention,
    retention_days,
)
from mlops_cdk.settings.errors import describe
from mlops_cdk.settings.loader import DEFAULT_ENVIRONMENT
from mlops_cdk.settings.network import (
    INTERFACE_ENDPOINT_NAMES,
    PRIVATE_SUBNET_MASK,
    PUBLIC_SUBNET_MASK,
    EgressMode,
    InterfaceEndpoint,
    NetworkSettings,
)
from mlops_cdk.settings.pipelines import (
    CREDENTIAL_ENVIRONMENT,
    LAMBDA_RESERVED_ENVIRONMENT,
    LAUNCHER_OWN_ENVIRONMENT,
    RESERVED_JOB_ENVIRONMENT,
    ChannelSettings,
    CronExpression,
    DataPrefix,
    DebuggerSettings,
    EmailAddress,
    EnvironmentName,
    EnvironmentValue,
    InferenceJobSettings,
    InferenceScheduleSettings,
    IntegerRange,
    JobEnvironment,
    LambdaLauncherSettings,
    NetworkIsolation,
    PipelinesSettings,
    ProcessingInstanceType,
    ProfilerSettings,
    ScheduleSettings,
    SchedulesSettings,
    TimeZoneName,
    TrainingInstanceType,
    TrainingJobSettings,
    TrainingScheduleSettings,
    TuningSettings,
)
from mlops_cdk.settings.root import Settings
from mlops_cdk.settings.storage import StorageSettings, bucket_name_problem
from mlops_cdk.settings.studio import (
    IdleMinutes,
    StudioInstanceType,
    StudioSettings,
    UserProfileName,
)
from mlops_cdk.settings.tracking import (
    MANAGED_MLFLOW_VERSION,
    SELF_HOSTED_MLFLOW_VERSION,
    SELF_HOSTED_MODES,
    TRACKING_MODES,
    Ec2TrackingSettings,
    FargateTrackingSettings,
    HalfAcu,
    MaintenanceWindow,
    OidcSettings,
    PolicyArn,
    TrackingMode,
    TrackingSettings,
)

__all__ = [
    "CREDENTIAL_ENVIRONMENT",
    "DEFAULT_ENVIRONMENT",
    "INTERFACE_ENDPOINT_NAMES",
    "LAMBDA_RESERVED_ENVIRONMENT",
    "LAUNCHER_OWN_ENVIRONMENT",
    "LOG_RETENTION_DAYS",
    "MANAGED_MLFLOW_VERSION",
    "PRIVATE_SUBNET_MASK",
    "PUBLIC_SUBNET_MASK",
    "RESERVED_JOB_ENVIRONMENT",
    "SELF_HOSTED_MLFLOW_VERSION",
    "SELF_HOSTED_MODES",
    "TRACKING_MODES",
    "ChannelSettings",
    "ConfigError",
    "CronExpression",
    "DataPrefix",
    "DebuggerSettings",
    "Ec2TrackingSettings",
    "EgressMode",
    "EmailAddress",
    "EnvironmentName",
    "EnvironmentValue",
    "FargateTrackingSettings",
    "HalfAcu",
    "IdleMinutes",
    "InferenceJobSettings",
    "InferenceScheduleSettings",
    "IntChoice",
    "IntegerRange",
    "InterfaceEndpoint",
    "JobEnvironment",
    "LambdaLauncherSettings",
    "LogRetentionDays",
    "MaintenanceWindow",
    "NetworkIsolation",
    "NetworkSettings",
    "OidcSettings",
    "PipelinesSettings",
    "PolicyArn",
    "ProcessingInstanceType",
    "ProfilerSettings",
    "ScheduleSettings",
    "SchedulesSettings",
    "Section",
    "Settings",
    "StorageSettings",
    "StudioInstanceType",
    "StudioSettings",
    "TimeZoneName",
    "TrackingMode",
    "TrackingSettings",
    "TrainingInstanceType",
    "TrainingJobSettings",
    "TrainingScheduleSettings",
    "TuningSettings",
    "UserProfileName",
    "bucket_name_problem",
    "check_log_retention",
    "describe",
    "retention_days",
]
