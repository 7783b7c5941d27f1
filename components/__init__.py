"""One Pulumi ComponentResource per module (type tokens modelplane:index:<Name>)."""
