"""Standard Webhooks v1 signatures, checked against the specification's reference vector."""

from __future__ import annotations

import pytest

from worker.signing import BadSecret, sign, verify

# From the Standard Webhooks specification and reference libraries.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_reference_vector() -> None:
    assert sign(SECRET, MSG_ID, TIMESTAMP, PAYLOAD) == EXPECTED


def test_verify_accepts_one_of_several_signatures_and_rejects_tampering() -> None:
    assert verify(SECRET, MSG_ID, TIMESTAMP, PAYLOAD, f"v1,bm9wZQ== {EXPECTED}")
    assert not verify(SECRET, MSG_ID, TIMESTAMP, PAYLOAD + b" ", EXPECTED)
    assert not verify(SECRET, MSG_ID, TIMESTAMP + 1, PAYLOAD, EXPECTED)
    assert not verify(SECRET, "msg_other", TIMESTAMP, PAYLOAD, EXPECTED)


def test_a_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(BadSecret):
        sign("whsec_not base64!", MSG_ID, TIMESTAMP, PAYLOAD)
