"""The engines' SigV4 signature is botocore's own: giving the Host header (instead of letting botocore derive it
from the URL at each request) changes nothing that is signed or sent."""

from __future__ import annotations

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from bedrock_lab.engines.formats import build_request
from bedrock_lab.engines.target import SIGNING_NAME, RequestSigner, Target, _host_header


@pytest.mark.parametrize(("url", "host"), [
    ("http://127.0.0.1:8088", "127.0.0.1:8088"),
    ("https://bedrock-runtime.us-west-2.amazonaws.com", "bedrock-runtime.us-west-2.amazonaws.com"),
    ("https://Bedrock-Runtime.us-west-2.amazonaws.com:443", "bedrock-runtime.us-west-2.amazonaws.com"),
    ("http://localhost:80", "localhost"),
    ("https://vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com:8443", "vpce-1.bedrock-runtime.eu-west-1.vpce.amazonaws.com:8443"),
    ("http://[::1]:9000", "[::1]:9000"),
])  # fmt: skip
def test_host_header_is_what_botocore_derives(url: str, host: str) -> None:
    from botocore.auth import _host_from_url  # botocore's private rule, compared here only

    assert _host_header(url + "/model/x/converse") == host == _host_from_url(url + "/model/x/converse")


@pytest.mark.parametrize("target", [
    Target.emulator("http://127.0.0.1:8088"),
    Target.aws("us-west-2"),
    Target.aws("eu-central-1", endpoint_url="https://vpce-1.bedrock-runtime.eu-central-1.vpce.amazonaws.com"),
], ids=["emulator", "aws", "vpc-endpoint"])  # fmt: skip
@pytest.mark.parametrize("api", ["converse-stream", "converse", "invoke-stream", "chat-completions"])
def test_signature_equals_botocore_deriving_the_host(target: Target, api: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-" + "x" * 20)  # the security token header is signed too
    prep = build_request(api, "anthropic.claude-3-haiku-20240307-v1:0", [("user", "Hi there")], max_tokens=16,
                         tier="priority")  # fmt: skip
    ours = RequestSigner(target)
    botocore_auth = SigV4Auth(target.credentials(), SIGNING_NAME, target.region)
    for _ in range(3):  # both signatures in the same second (X-Amz-Date): retry across a second boundary
        url, headers = ours.sign(prep.api, prep.path, prep.body, prep.headers)
        ref = AWSRequest(method="POST", url=url, data=prep.body, headers=dict(prep.headers))
        botocore_auth.add_auth(ref)
        if ref.headers["X-Amz-Date"] == headers["X-Amz-Date"]:
            break
    assert headers["Authorization"] == ref.headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == ref.headers["X-Amz-Security-Token"]
    assert {k.lower() for k in headers} == {k.lower() for k in ref.headers} | {"host"}
