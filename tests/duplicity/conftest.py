import pytest
from support.mounting import private_mount_dirs


@pytest.fixture
def mountdir():
    """``mountdir()`` -> a fresh, empty mount point outside pytest's basetemp."""
    with private_mount_dirs() as make:
        yield make
