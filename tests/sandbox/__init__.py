from tests.sandbox.core import AWS_CONN_ID, SMTP_CONN_ID, SSH_CONN_ID, Sandbox, SandboxNode, wait_until

__all__ = ["AWS_CONN_ID", "SMTP_CONN_ID", "SSH_CONN_ID", "Sandbox", "SandboxNode", "wait_until"]
