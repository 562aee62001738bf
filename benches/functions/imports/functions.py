"""benches/imports: a function built on two pure-Python packages from PyPI.

`dateutil` parses the caller's timestamp and works out the next maintenance dates of a
recurrence rule; `packaging` checks the caller's firmware version against a specifier. In
wasmfn the imports happen at build time (the bundle is pre-initialised with the modules
loaded); in CPython once per worker process. What each call then costs is what the benchmark
compares.
"""

from dateutil import parser as date_parser
from dateutil import rrule
from dateutil.relativedelta import relativedelta
from ixoncdkingress.function.context import FunctionContext
from packaging.specifiers import SpecifierSet
from packaging.version import Version

SUPPORTED = SpecifierSet(">=2.4,<4,!=3.1.*")


@FunctionContext.expose
def schedule(context: FunctionContext, since: str = "2026-12-04T08:30:00+01:00",
             firmware: str = "3.2.7", every_weeks: int = 2, **kwargs):
    start = date_parser.isoparse(str(since))
    rule = rrule.rrule(rrule.WEEKLY, interval=max(1, int(every_weeks)), count=6,
                       byweekday=(rrule.MO, rrule.TH), dtstart=start)
    version = Version(str(firmware))
    return {
        "next": [when.isoformat() for when in rule],
        "warranty_ends": (start + relativedelta(years=2, months=-1)).date().isoformat(),
        "firmware": str(version),
        "supported": version in SUPPORTED,
        "upgrade_to": str(Version(f"{version.major}.{version.minor + 1}.0")),
    }
