package state

import "testing"

func TestClassifyFS(t *testing.T) {
	cases := map[string]struct {
		magic  int64
		name   string
		remote bool
	}{
		"ext4":               {0xEF53, "", false},
		"tmpfs":              {0x01021994, "", false},
		"xfs":                {0x58465342, "", false},
		"nfs":                {0x6969, "NFS", true},
		"cifs":               {0xFF534D42, "CIFS", true},
		"smb2":               {0xFE534D42, "SMB2", true},
		"sign-extended cifs": {int64(int32(-0x00ACB2BE)), "CIFS", true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, remote := classifyFS(tc.magic)
			if got != tc.name || remote != tc.remote {
				t.Errorf("classifyFS(%#x) = %q, %v", tc.magic, got, remote)
			}
		})
	}
	// The machine's own temp directory is local.
	if name, remote := networkFS(t.TempDir()); remote {
		t.Errorf("the test's temp directory reads as %s", name)
	}
}
