"""The tiny models the interop tests run on, one module-scoped fixture per family."""

import pytest

from tests.interop.cases import FAMILIES, sharp_tiny


@pytest.fixture(scope="module", params=FAMILIES)
def lm(request):
    return sharp_tiny(request.param)
