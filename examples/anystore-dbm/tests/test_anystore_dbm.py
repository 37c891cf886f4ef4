import pytest
from anystore import get_store
from anystore.testing import StoreTests
class TestDbm(StoreTests):
    store = pytest.fixture(lambda self, tmp_path: get_store(f"dbm://{tmp_path}/kit.db"))
