"""Drives a running credd-sandbox's AWS Sign-In endpoints with unmodified
botocore (1.44, with awscrt), to check wire compatibility by hand:

    python3 signin_check.py http://127.0.0.1:PORT

The login is done as the AWS CLI's same-device flow does it (its PKCE and
DPoP helpers are botocore's), then botocore's own LoginProvider, pointed at
the sandbox by AWS_ENDPOINT_URL_SIGNIN and AWS_LOGIN_CACHE_DIRECTORY,
refreshes from the cache file. Exits non-zero on the first mismatch.
"""

import base64
import datetime
import hashlib
import json
import os
import secrets
import string
import sys
import tempfile
import textwrap
import urllib.parse
import urllib.request
import uuid

import botocore.session
from awscrt.crypto import EC, ECExportFormat, ECType
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import _build_add_dpop_header_handler

url = sys.argv[1]
SAME_DEVICE = "arn:aws:signin:::devtools/same-device"


def control(path, body=None, method="POST"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + "/_sandbox/" + path, data=data, method=method)
    return json.load(urllib.request.urlopen(req))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def signin_client(key):
    client = botocore.session.get_session().create_client(
        "signin",
        region_name="us-east-1",
        endpoint_url=url,
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )
    client.meta.events.register(
        "before-call.signin.CreateOAuth2Token", _build_add_dpop_header_handler(key)
    )
    return client


control("config", {"login_identity": "arn:aws:iam::123456789012:user/dev"})
control("counts", method="DELETE")

# The browser leg, as the CLI builds the URL (challenge without its padding).
verifier = "".join(secrets.choice(string.ascii_letters + string.digits + "-._~") for _ in range(64))
challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()[:-1]
state = str(uuid.uuid4())
redirect_uri = "http://127.0.0.1:45678/oauth/callback"
query = urllib.parse.urlencode(
    {
        "response_type": "code",
        "client_id": SAME_DEVICE,
        "state": state,
        "code_challenge_method": "SHA-256",
        "scope": "openid",
        "redirect_uri": redirect_uri,
    }
)
opener = urllib.request.build_opener(NoRedirect)
try:
    opener.open(f"{url}/v1/authorize?{query}&code_challenge={challenge}")
    raise SystemExit("authorize did not redirect")
except urllib.error.HTTPError as e:
    assert e.code == 302, e.code
    location = urllib.parse.urlparse(e.headers["Location"])
assert location.path == "/oauth/callback", location
params = dict(urllib.parse.parse_qsl(location.query))
assert params["state"] == state, params

key = EC.new_generate(ECType.P_256)
out = signin_client(key).create_o_auth2_token(
    tokenInput={
        "clientId": SAME_DEVICE,
        "grantType": "authorization_code",
        "code": params["code"],
        "codeVerifier": verifier,
        "redirectUri": redirect_uri,
    }
)["tokenOutput"]
assert out["tokenType"] == "aws_sigv4" and out["expiresIn"] == 900, out
payload = out["idToken"].split(".")[1]
sub = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
assert sub == "arn:aws:iam::123456789012:user/dev", sub

# A refresh signed by another key is refused with an AccessDeniedException
# whose `error` botocore reads.
other = signin_client(EC.new_generate(ECType.P_256))
try:
    other.create_o_auth2_token(
        tokenInput={"clientId": SAME_DEVICE, "grantType": "refresh_token", "refreshToken": out["refreshToken"]}
    )
    raise SystemExit("a refresh with another DPoP key was accepted")
except other.exceptions.AccessDeniedException as e:
    assert e.response["error"] == "INVALID_REQUEST", e.response

# The cache file the CLI writes, already expired, so the provider refreshes.
cache_dir = tempfile.mkdtemp()
pem_body = textwrap.fill(base64.b64encode(key.export_key(ECExportFormat.SEC1)).decode(), width=64)
cache = {
    "accessToken": {
        "accessKeyId": out["accessToken"]["accessKeyId"],
        "secretAccessKey": out["accessToken"]["secretAccessKey"],
        "sessionToken": out["accessToken"]["sessionToken"],
        "accountId": "123456789012",
        "expiresAt": "2000-01-01T00:00:00Z",
    },
    "tokenType": "aws_sigv4",
    "clientId": SAME_DEVICE,
    "refreshToken": out["refreshToken"],
    "idToken": out["idToken"],
    "dpopKey": f"-----BEGIN EC PRIVATE KEY-----\n{pem_body}\n-----END EC PRIVATE KEY-----\n",
}
cache_file = os.path.join(cache_dir, hashlib.sha256(sub.encode()).hexdigest() + ".json")
with open(cache_file, "w") as f:
    json.dump(cache, f)
config_file = os.path.join(cache_dir, "config")
with open(config_file, "w") as f:
    f.write(f"[profile dev]\nlogin_session = {sub}\nregion = us-east-1\n")
os.environ.update(
    {
        "AWS_CONFIG_FILE": config_file,
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(cache_dir, "none"),
        "AWS_LOGIN_CACHE_DIRECTORY": cache_dir,
        "AWS_ENDPOINT_URL_SIGNIN": url,
        "AWS_ENDPOINT_URL_STS": url,
    }
)
session = botocore.session.Session(profile="dev")
creds = session.get_credentials()
assert creds.method == "login", creds.method
frozen = creds.get_frozen_credentials()
with open(cache_file) as f:
    rotated = json.load(f)
assert rotated["refreshToken"] != out["refreshToken"], "the refresh token did not rotate"
assert frozen.access_key == rotated["accessToken"]["accessKeyId"]
ident = session.create_client("sts", region_name="us-east-1").get_caller_identity()
assert ident["Arn"] == sub, ident

# The first refresh token again: reuse, which revokes the family.
try:
    signin_client(key).create_o_auth2_token(
        tokenInput={"clientId": SAME_DEVICE, "grantType": "refresh_token", "refreshToken": out["refreshToken"]}
    )
    raise SystemExit("a rotated-out refresh token was accepted")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "AccessDeniedException", e.response
    assert e.response["error"] == "TOKEN_EXPIRED", e.response
counts = control("counts", method="GET")
assert counts.get("RefreshTokenReuse") == 1, counts

# The family is revoked: botocore's provider now asks for a new sign-in.
rotated["accessToken"]["expiresAt"] = "2000-01-01T00:00:00Z"
with open(cache_file, "w") as f:
    json.dump(rotated, f)
try:
    botocore.session.Session(profile="dev").get_credentials().get_frozen_credentials()
    raise SystemExit("the revoked session refreshed")
except botocore.exceptions.LoginRefreshRequired:
    pass
print("signin_check: ok", json.dumps(counts, sort_keys=True))

# STS: the three issue-13 operations, parsed by botocore's sts model.
sts = botocore.session.get_session().create_client(
    "sts",
    region_name="us-east-1",
    endpoint_url=url,
    aws_access_key_id="AKIASANDBOXDEMO00001",
    aws_secret_access_key="x" * 40,
)
fed = sts.get_federation_token(Name="console-dev", DurationSeconds=1800)
assert fed["FederatedUser"]["Arn"] == "arn:aws:sts::111122223333:federated-user/console-dev", fed
message = control("encode-message", {"allowed": False, "context": {"action": "s3:GetObject"}})["message"]
decoded = sts.decode_authorization_message(EncodedMessage=message)["DecodedMessage"]
assert json.loads(decoded)["context"]["action"] == "s3:GetObject", decoded
try:
    sts.decode_authorization_message(EncodedMessage=message[:-3] + "AAA")
    raise SystemExit("a garbled message was decoded")
except sts.exceptions.InvalidAuthorizationMessageException:
    pass
role, idp = "arn:aws:iam::111122223333:role/SamlDev", "arn:aws:iam::111122223333:saml-provider/Corp"
later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
assertion = f"""<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">
<saml:Issuer>https://idp.example.com</saml:Issuer><saml:Assertion><saml:Subject>
<saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient">dev@example.com</saml:NameID>
<saml:SubjectConfirmation><saml:SubjectConfirmationData NotOnOrAfter="{later}"/></saml:SubjectConfirmation></saml:Subject>
<saml:AttributeStatement>
<saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/Role"><saml:AttributeValue>{idp},{role}</saml:AttributeValue></saml:Attribute>
<saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/RoleSessionName"><saml:AttributeValue>dev</saml:AttributeValue></saml:Attribute>
</saml:AttributeStatement></saml:Assertion></samlp:Response>"""
saml = botocore.session.get_session().create_client("sts", region_name="us-east-1", endpoint_url=url)
out = saml.assume_role_with_saml(
    RoleArn=role, PrincipalArn=idp, SAMLAssertion=base64.b64encode(assertion.encode()).decode()
)
assert out["AssumedRoleUser"]["Arn"] == "arn:aws:sts::111122223333:assumed-role/SamlDev/dev", out
assert (out["Subject"], out["SubjectType"], out["Issuer"]) == ("dev@example.com", "transient", "https://idp.example.com"), out

# Console federation with the SAML role's credentials.
c = out["Credentials"]
session_json = json.dumps({"sessionId": c["AccessKeyId"], "sessionKey": c["SecretAccessKey"], "sessionToken": c["SessionToken"]})
token = json.load(urllib.request.urlopen(f"{url}/federation?Action=getSigninToken&Session={urllib.parse.quote(session_json)}"))["SigninToken"]
login = f"{url}/federation?Action=login&Issuer=check&Destination={urllib.parse.quote('https://console.aws.amazon.com/')}&SigninToken={token}"
try:
    opener.open(login)
    raise SystemExit("login did not redirect")
except urllib.error.HTTPError as e:
    assert e.code == 302 and e.headers["Location"] == "https://console.aws.amazon.com/", e.code

# A seeded login (POST /_sandbox/seed-login): its PEM loads in awscrt and
# botocore's provider refreshes it.
seeded = control("seed-login")
with open(cache_file, "w") as f:
    json.dump(seeded, f)
seeded_creds = botocore.session.Session(profile="dev").get_credentials().get_frozen_credentials()
assert seeded_creds.access_key == seeded["accessToken"]["accessKeyId"]
with open(cache_file) as f:
    seeded["accessToken"]["expiresAt"] = "2000-01-01T00:00:00Z"
    json.dump(seeded, open(cache_file, "w"))
fresh = botocore.session.Session(profile="dev").get_credentials().get_frozen_credentials()
assert fresh.access_key != seeded["accessToken"]["accessKeyId"], "the seeded login did not refresh"
print("sts, federation and seed-login: ok")
