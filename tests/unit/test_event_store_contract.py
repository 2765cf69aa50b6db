from tests.contract_event_store import EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    pass  # `store` comes from tests/unit/conftest.py
