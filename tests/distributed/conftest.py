"""One 2-process group (gloo) runs the default suite's distributed work once; the tests read what it wrote."""

import pytest

from dist_helpers import default_jobs, spawn


@pytest.fixture(scope="session")
def two_process_outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("two-processes")
    spawn(default_jobs, 2, out)
    return out
