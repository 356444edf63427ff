"""Drives a running credd-sandbox with unmodified botocore, to check wire
compatibility by hand: python3 botocore_check.py http://127.0.0.1:PORT

Expects the sandbox to auto-approve device authorizations
(`credd-sandbox --auto-approve-device`). Exits non-zero on the first
mismatch.
"""

import base64
import datetime
import hashlib
import json
import secrets
import sys
import urllib.parse
import urllib.request

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

url = sys.argv[1]
session = botocore.session.get_session()
cfg = Config(retries={"total_max_attempts": 1})
oidc = session.create_client("sso-oidc", region_name="eu-west-1", endpoint_url=url, config=cfg)
sso = session.create_client("sso", region_name="eu-west-1", endpoint_url=url, config=cfg)


def control(path, body=None, method="POST"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + "/_sandbox/" + path, data=data, method=method)
    return json.load(urllib.request.urlopen(req))


reg = oidc.register_client(clientName="check", clientType="public", scopes=["sso:account:access"])
assert reg["clientSecretExpiresAt"] > 0, reg
dev = oidc.start_device_authorization(
    clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl="https://example.awsapps.com/start"
)
assert dev["verificationUriComplete"].startswith(url + "/device?user_code="), dev
tok = oidc.create_token(
    clientId=reg["clientId"],
    clientSecret=reg["clientSecret"],
    grantType="urn:ietf:params:oauth:grant-type:device_code",
    deviceCode=dev["deviceCode"],
)
assert tok["tokenType"] == "Bearer" and tok["refreshToken"], tok

# Authorization code with PKCE, the browser leg done by urllib without
# following the redirect.
reg2 = oidc.register_client(
    clientName="check-pkce",
    clientType="public",
    scopes=["sso:account:access"],
    grantTypes=["authorization_code", "refresh_token"],
    redirectUris=["http://127.0.0.1/oauth/callback"],
    issuerUrl="https://example.awsapps.com/start",
)
verifier = secrets.token_urlsafe(48)
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
redirect_uri = "http://127.0.0.1:4567/oauth/callback"
query = urllib.parse.urlencode(
    {
        "response_type": "code",
        "client_id": reg2["clientId"],
        "redirect_uri": redirect_uri,
        "state": "xyz",
        "code_challenge_method": "S256",
        "scopes": "sso:account:access",
        "code_challenge": challenge,
    }
)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


try:
    urllib.request.build_opener(NoRedirect).open(url + "/authorize?" + query)
    raise AssertionError("expected a redirect")
except urllib.error.HTTPError as e:
    assert e.code == 302, e.code
    location = urllib.parse.urlparse(e.headers["Location"])
params = dict(urllib.parse.parse_qsl(location.query))
assert params["state"] == "xyz", params
tok2 = oidc.create_token(
    clientId=reg2["clientId"],
    clientSecret=reg2["clientSecret"],
    grantType="authorization_code",
    code=params["code"],
    codeVerifier=verifier,
    redirectUri=redirect_uri,
)
refreshed = oidc.create_token(
    clientId=reg2["clientId"],
    clientSecret=reg2["clientSecret"],
    grantType="refresh_token",
    refreshToken=tok2["refreshToken"],
)
assert refreshed["refreshToken"] != tok2["refreshToken"], refreshed

try:
    oidc.create_token(
        clientId=reg["clientId"],
        clientSecret=reg["clientSecret"],
        grantType="refresh_token",
        refreshToken=refreshed["refreshToken"],
    )
    raise AssertionError("another client's refresh token was accepted")
except oidc.exceptions.InvalidGrantException as e:
    assert e.response["Error"]["Code"] == "InvalidGrantException", e.response

access = tok["accessToken"]
accounts = [a for page in sso.get_paginator("list_accounts").paginate(accessToken=access) for a in page["accountList"]]
assert [a["accountId"] for a in accounts] == ["111122223333", "444455556666"], accounts
roles = [
    r
    for page in sso.get_paginator("list_account_roles").paginate(accessToken=access, accountId="111122223333")
    for r in page["roleList"]
]
assert [r["roleName"] for r in roles] == ["PowerUserAccess", "ReadOnly"], roles
creds = sso.get_role_credentials(accessToken=access, accountId="111122223333", roleName="PowerUserAccess")[
    "roleCredentials"
]
assert creds["expiration"] > 1e12, creds  # epoch milliseconds
try:
    sso.get_role_credentials(accessToken=access, accountId="444455556666", roleName="PowerUserAccess")
    raise AssertionError("unassigned role was served")
except ClientError as e:
    assert e.response["Error"]["Code"] == "ForbiddenException", e.response

sts = session.create_client(
    "sts",
    region_name="eu-west-1",
    endpoint_url=url,
    config=cfg,
    aws_access_key_id=creds["accessKeyId"],
    aws_secret_access_key=creds["secretAccessKey"],
    aws_session_token=creds["sessionToken"],
)
me = sts.get_caller_identity()
assert me["Arn"] == "arn:aws:sts::111122223333:assumed-role/PowerUserAccess/demo-user", me
assumed = sts.assume_role(RoleArn="arn:aws:iam::444455556666:role/Admin", RoleSessionName="check")
assert isinstance(assumed["Credentials"]["Expiration"], datetime.datetime), assumed
assert assumed["AssumedRoleUser"]["Arn"] == "arn:aws:sts::444455556666:assumed-role/Admin/check", assumed
web = session.create_client("sts", region_name="eu-west-1", endpoint_url=url, config=cfg)
wi = web.assume_role_with_web_identity(
    RoleArn="arn:aws:iam::111122223333:role/Web", RoleSessionName="web", WebIdentityToken="not-a-jwt"
)
assert wi["SubjectFromWebIdentityToken"] == "sandbox-subject", wi

sso.logout(accessToken=access)
try:
    sso.list_accounts(accessToken=access)
    raise AssertionError("logged-out token still works")
except sso.exceptions.UnauthorizedException:
    pass

control("fault", {"operation": "GetCallerIdentity", "throttle": True, "times": 1})
try:
    sts.get_caller_identity()
    raise AssertionError("throttle fault did not fire")
except ClientError as e:
    assert e.response["Error"]["Code"] == "Throttling", e.response
sts.get_caller_identity()

control("end-session")
try:
    oidc.create_token(
        clientId=reg2["clientId"],
        clientSecret=reg2["clientSecret"],
        grantType="refresh_token",
        refreshToken=refreshed["refreshToken"],
    )
    raise AssertionError("refresh after end-session worked")
except oidc.exceptions.InvalidGrantException:
    pass

control("advance-clock", {"seconds": 7200})
try:
    sts.get_caller_identity()
    raise AssertionError("expired role credentials were accepted")
except ClientError as e:
    assert e.response["Error"]["Code"] == "ExpiredToken", e.response

counts = control("counts", method="GET")
assert counts["CreateToken:refresh_token"] == 3 and counts["GetCallerIdentity"] == 4, counts
print("botocore check passed:", json.dumps(counts, sort_keys=True))
