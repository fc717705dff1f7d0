// Package emis is the EMIS Web provider: secure SFTP sites that deliver
// encrypted extract batches, and the landing of those batches.
package emis

import (
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/im1dev/im1/providers/check"
	"github.com/im1dev/im1/providers/emis/sftpsite"
	"github.com/im1dev/im1/schema"
)

func requestSize(v cty.Value) error {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	n, _ := v.AsBigFloat().Int64()
	if n < 32768 || n > sftpsite.MaxRequestSize {
		return fmt.Errorf("%d is outside 32768..%d", n, sftpsite.MaxRequestSize)
	}
	return nil
}

// SiteSchema is the emis_site block.
var SiteSchema = &schema.Block{
	Doc:     "An EMIS secure SFTP site delivering encrypted extract batches, for many organisations or one.",
	ForEach: true,
	Attributes: []*schema.Attribute{
		{Name: "host", Type: cty.String, Required: true, Doc: "SFTP host name or address."},
		{Name: "port", Type: cty.Number, Default: cty.NumberIntVal(22), Doc: "SFTP port."},
		{Name: "user", Type: cty.String, Required: true, Doc: "SFTP user name."},
		{Name: "host_key", Type: cty.String, Doc: `Pinned host key in authorized_keys form ("ssh-ed25519 AAAA..."). One of host_key, host_keys or known_hosts_file is required.`},
		{Name: "host_keys", Type: cty.List(cty.String), Doc: "Several pinned host keys (during a server key change)."},
		{Name: "known_hosts_file", Type: cty.String, Doc: "A known_hosts file holding the site's host key."},
		{Name: "auth_key_file", Type: cty.String, Doc: "Private key file for SSH authentication (OpenSSH format)."},
		{Name: "use_agent", Type: cty.Bool, Default: cty.False, Doc: "Authenticate with the ssh-agent at SSH_AUTH_SOCK."},
		{Name: "remote_dir", Type: cty.String, Default: cty.StringVal("."), Doc: "The flat remote directory holding the batches."},
		{Name: "architecture", Type: cty.String, Default: cty.StringVal("multi_organisation"), Doc: `"multi_organisation" (one extract for many practices) or "organisation_specific" (one site per practice).`, Check: check.String(check.OneOf("multi_organisation", "organisation_specific"))},
		{Name: "sharing_agreement", Type: cty.String, Required: true, Doc: "GUID of the data sharing agreement every file name must carry.", Check: check.String(check.GUID)},
		{Name: "organisations", Type: cty.List(cty.String), Required: true, Doc: "ODS codes of the practices expected in the extract.", Check: check.Each(check.ODS)},
		{Name: "recipient_keys", Type: cty.List(cty.String), Required: true, Doc: "Fingerprints of the keys batches are encrypted to (current first; previous during rotation)."},
		{Name: "sender_key_file", Type: cty.String, Doc: "EMIS's public signing key; when set, every file must carry a valid signature."},
		{Name: "connect_timeout", Type: cty.String, Default: cty.StringVal("30s"), Doc: "Connect timeout.", Check: check.String(check.Duration)},
		{Name: "idle_timeout", Type: cty.String, Default: cty.StringVal("10m"), Doc: "A transfer with no progress for this long fails and is retried.", Check: check.String(check.Duration)},
		{Name: "sftp_request_size", Type: cty.Number, Doc: "Bytes per SFTP read request, 32768 to 261120. Unset, im1 asks the server (OpenSSH's limits@openssh.com: 261120, what OpenSSH's own sftp uses) and uses 32768 when it does not say; see bench/README.md.", Check: requestSize},
		{Name: "stable_after", Type: cty.String, Default: cty.StringVal("2m"), Doc: "A file is fetched only when two listings this far apart agree on its size and time.", Check: check.String(check.Duration)},
	},
}
