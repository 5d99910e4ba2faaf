"""The statuses a workspace record can have, spelled as Azure ML v1 spells them.

Published pipelines, endpoints and schedules use Active and Disabled; modules and module versions
also use Deprecated. The run-time side (an endpoint schedule's router) compares against the same
constants, so a record written by the SDK and read on a worker agree by construction.
"""

from mlpipe_provider.contract.constants import ACTIVE, DEPRECATED, DISABLED

STATUSES = (ACTIVE, DEPRECATED, DISABLED)
