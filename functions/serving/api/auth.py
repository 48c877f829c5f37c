"""Who may use the console's batch routes: a signed-in user's ID token, checked.

The token is a JSON Web Token issued by a Cognito user pool (in an account) or by
the local cloud's issuer (moto's Cognito, which signs the same tokens): RS256,
signed by a key of the issuer's JWKS, ``iss`` the pool, ``aud`` the console's app
client, ``token_use`` "id", not expired. One check, PyJWT's, run by the API's
authorizer in an account and again by the batch routes' function everywhere
(LocalStack's API Gateway runs no authorizer): docs/decisions/console-sign-in.md.
"""

from __future__ import annotations

from typing import Any

import jwt

LEEWAY_SECONDS = 30  # clocks of the issuer and the function may differ by this much


class Unauthorized(Exception):
    """No token, or one that is not valid here: the answer is 401 with this reason."""


class TokenVerifier:
    def __init__(self, issuer: str, audience: str, jwks_url: str, keys: Any = None) -> None:
        self.issuer, self.audience = issuer, audience
        # the issuer's public keys, fetched on the first token and kept (a new key id fetches again)
        self.keys = keys or jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=3600, timeout=5)

    def claims(self, authorization: str | None) -> dict[str, Any]:
        """The claims of ``Authorization: Bearer <token>``; Unauthorized saying what is wrong."""
        if not authorization:
            raise Unauthorized("sign in: this route needs an Authorization: Bearer <ID token> header")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be Bearer <ID token>")
        try:
            key = self.keys.get_signing_key_from_jwt(token.strip())
            claims = jwt.decode(
                token.strip(), key.key, algorithms=["RS256"], audience=self.audience, issuer=self.issuer,
                leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "iss", "aud", "sub", "token_use"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired: sign in again") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token was issued in the future: check this machine's clock") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("the token was issued to another application") from None
        except jwt.MissingRequiredClaimError as error:
            hint = ": send the ID token, not the access token" if error.claim == "aud" else ""
            raise Unauthorized(f"the token has no {error.claim!r} claim{hint}") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("the token was issued by another user pool") from None
        except jwt.PyJWKClientConnectionError:
            raise Unauthorized("the issuer's keys could not be fetched: try again") from None
        except jwt.PyJWTError as error:
            raise Unauthorized(f"the token is not valid: {error}") from None
        if claims.get("token_use") != "id":
            raise Unauthorized("send the ID token, not the access token")
        return claims


def user_of(claims: dict[str, Any]) -> str:
    """The name the console shows for a signed-in user."""
    return str(claims.get("cognito:username") or claims.get("email") or claims["sub"])
