"""The console's token check: a user pool's ID token, and every way a token is refused."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from serving.api.auth import LEEWAY_SECONDS, TokenVerifier, Unauthorized, user_of

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool"
CLIENT = "console-client"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Keys:
    """The issuer's JWKS as PyJWKClient serves it: the key named by the token's kid."""

    def __init__(self, key=KEY):
        self.key, self.asked = key, 0

    def get_signing_key_from_jwt(self, token):
        self.asked += 1
        if jwt.get_unverified_header(token).get("kid") != "k1":
            raise jwt.PyJWKClientError('Unable to find a signing key that matches: "other"')
        return jwt.PyJWK.from_dict({**jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True),
                                    "kid": "k1", "alg": "RS256", "use": "sig"})


def token(key=KEY, kid="k1", algorithm="RS256", **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": CLIENT, "sub": "u-1", "token_use": "id", "iat": now, "exp": now + 600,
               "cognito:username": "ada", **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture
def verifier():
    return TokenVerifier(ISSUER, CLIENT, "https://unused/.well-known/jwks.json", keys=Keys())


def refusal(verifier, header) -> str:
    with pytest.raises(Unauthorized) as refused:
        verifier.claims(header)
    return str(refused.value)


def test_a_valid_id_token_gives_its_claims_and_user(verifier):
    claims = verifier.claims(f"Bearer {token()}")
    assert claims["sub"] == "u-1" and claims["aud"] == CLIENT and claims["iss"] == ISSUER
    assert user_of(claims) == "ada"
    assert verifier.claims(f"bearer   {token()}  ")["sub"] == "u-1"  # the scheme in any case, spaces around


def test_the_user_is_the_username_then_the_email_then_the_subject():
    assert user_of({"sub": "s", "email": "e@x", "cognito:username": "u"}) == "u"
    assert user_of({"sub": "s", "email": "e@x"}) == "e@x"
    assert user_of({"sub": "s"}) == "s"


@pytest.mark.parametrize("header, reason", [
    (None, "sign in: this route needs an Authorization: Bearer <ID token> header"),
    ("", "sign in: this route needs an Authorization: Bearer <ID token> header"),
    ("Basic YWRhOnB3", "the Authorization header must be Bearer <ID token>"),
    ("Bearer ", "the Authorization header must be Bearer <ID token>"),
    ("Bearer", "the Authorization header must be Bearer <ID token>"),
])
def test_no_token_is_refused_saying_how_to_send_one(verifier, header, reason):
    assert refusal(verifier, header) == reason


def test_an_expired_token_is_refused(verifier):
    old = int(time.time()) - 3600
    assert refusal(verifier, f"Bearer {token(iat=old, exp=old + 600)}") == "the token has expired: sign in again"


def test_a_token_just_past_its_expiry_is_accepted_within_the_clock_leeway(verifier):
    now = int(time.time())
    assert verifier.claims(f"Bearer {token(exp=now - LEEWAY_SECONDS + 5)}")["sub"] == "u-1"
    assert "expired" in refusal(verifier, f"Bearer {token(exp=now - LEEWAY_SECONDS - 5)}")


def test_a_token_for_another_application_is_refused(verifier):
    assert refusal(verifier, f"Bearer {token(aud='another-client')}") == \
        "the token was issued to another application"


def test_a_token_of_another_user_pool_is_refused(verifier):
    other = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"
    assert refusal(verifier, f"Bearer {token(iss=other)}") == "the token was issued by another user pool"


def test_an_access_token_is_refused_asking_for_the_id_token(verifier):
    # Cognito's access tokens carry client_id, not aud
    assert refusal(verifier, f"Bearer {token(aud=None, client_id=CLIENT, token_use='access')}") == \
        "the token has no 'aud' claim: send the ID token, not the access token"
    assert refusal(verifier, f"Bearer {token(token_use='access')}") == \
        "send the ID token, not the access token"


@pytest.mark.parametrize("missing", ["exp", "sub", "token_use", "iat"])
def test_a_token_without_a_required_claim_is_refused(verifier, missing):
    assert refusal(verifier, f"Bearer {token(**{missing: None})}") == f"the token has no {missing!r} claim"


def test_a_token_signed_by_another_key_is_refused(verifier):
    assert refusal(verifier, f"Bearer {token(key=OTHER_KEY)}") == \
        "the token is not valid: Signature verification failed"


def test_a_key_the_issuer_does_not_have_is_refused(verifier):
    assert "Unable to find a signing key" in refusal(verifier, f"Bearer {token(kid='other')}")


def test_an_unsigned_token_is_refused(verifier):
    assert refusal(verifier, f"Bearer {token(key=None, algorithm='none')}") == \
        "the token is not valid: The specified alg value is not allowed"


def test_a_token_signed_with_a_shared_secret_is_refused(verifier):
    assert refusal(verifier, f"Bearer {token(key='k' * 32, algorithm='HS256')}") == \
        "the token is not valid: The specified alg value is not allowed"


def test_garbage_is_refused_not_raised(verifier):
    assert refusal(verifier, "Bearer not.a.token").startswith("the token is not valid")
    assert refusal(verifier, "Bearer abc").startswith("the token is not valid")


def test_the_issuer_unreachable_is_a_refusal_to_retry():
    class Down:
        def get_signing_key_from_jwt(self, token):
            raise jwt.PyJWKClientConnectionError("Fail to fetch data from the url, err: timed out")

    verifier = TokenVerifier(ISSUER, CLIENT, "https://unused", keys=Down())
    assert refusal(verifier, f"Bearer {token()}") == "the issuer's keys could not be fetched: try again"


def test_the_keys_come_from_the_jwks_url_and_are_cached():
    verifier = TokenVerifier(ISSUER, CLIENT, "https://issuer.example/.well-known/jwks.json")
    assert isinstance(verifier.keys, jwt.PyJWKClient)
    assert verifier.keys.uri == "https://issuer.example/.well-known/jwks.json"
    assert verifier.keys.jwk_set_cache.lifespan == 3600  # the key set kept an hour between requests
    assert hasattr(verifier.keys.get_signing_key, "cache_info")  # each key kept by its id
    assert verifier.keys.timeout == 5  # an issuer that does not answer fails the request, not the function


def test_a_token_issued_in_the_future_is_refused(verifier):
    later = int(time.time()) + 3600
    assert refusal(verifier, f"Bearer {token(iat=later, exp=later + 600)}") == \
        "the token was issued in the future: check this machine's clock"
    soon = int(time.time()) + LEEWAY_SECONDS - 5
    assert verifier.claims(f"Bearer {token(iat=soon)}")["sub"] == "u-1"  # within the clocks' leeway
