import pytest

from schemas import InvalidTopicError, TopicKind, build_topic, parse_topic, subscription_filter


def test_round_trip_of_a_readings_topic():
    topic = build_topic("park-a", "m_001", TopicKind.READINGS)
    assert topic == "parkpulse/v1/park-a/m_001/readings"
    address = parse_topic(topic)
    assert (address.park_id, address.device_id, address.kind) == ("park-a", "m_001", TopicKind.READINGS)
    assert address.topic == topic


@pytest.mark.parametrize(
    ("topic", "fragment"),
    [
        ("parkpulse/v1/park-a/m1", "5 levels"),
        ("other/v1/park-a/m1/readings", "root"),
        ("parkpulse/v2/park-a/m1/readings", "version"),
        ("parkpulse/v1/Park-A/m1/readings", "park id"),
        ("parkpulse/v1/park-a/m 1/readings", "device id"),
        ("parkpulse/v1/park-a/-m1/readings", "device id"),
        ("parkpulse/v1/park-a/m1/telemetry", "message kind"),
        ("parkpulse/v1/park-a/" + "d" * 65 + "/readings", "device id"),
    ],
)
def test_invalid_topics_say_why(topic, fragment):
    with pytest.raises(InvalidTopicError) as info:
        parse_topic(topic)
    assert fragment in str(info.value)


def test_build_topic_refuses_wildcards_in_ids():
    with pytest.raises(InvalidTopicError):
        build_topic("park-a", "m/+", TopicKind.READINGS)


def test_subscription_filters():
    assert subscription_filter(TopicKind.READINGS) == "parkpulse/v1/+/+/readings"
    assert subscription_filter(TopicKind.STATUS, park_id="p1", share_group="ingest") == (
        "$share/ingest/parkpulse/v1/p1/+/status"
    )
    assert subscription_filter() == "parkpulse/v1/+/+/+"
