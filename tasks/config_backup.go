package tasks

// The last known good content of a service's configuration file, kept on
// the host before dindops replaces the file, so that the service task can
// put it back when the service does not come up with the new one (see
// Service.Restore), in this run or in a later one after an interrupted run
// or a lost connection.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"time"
)

// ConfigBackupDir holds one record per backed-up file: root only (0700,
// records 0600, written atomically).
const ConfigBackupDir = "/var/lib/dindops/backup"

// configBackup is the record of one file.
type configBackup struct {
	Version int    `json:"version"`
	Path    string `json:"path"`
	// Existed is false when there was no file: restoring removes it.
	Existed bool   `json:"existed"`
	Content string `json:"content"`
	Mode    string `json:"mode"`
	Owner   string `json:"owner"`
	Group   string `json:"group"`
	// Written is the SHA-256 of what dindops wrote over it. Only a file
	// that still has that content is restored: one edited since is not
	// dindops's to undo.
	Written string    `json:"written_sha256"`
	Since   time.Time `json:"since"`
}

// configBackupPath is where the record of the file p is kept.
func configBackupPath(p string) string {
	return ConfigBackupDir + "/" + strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "_") + ".json"
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// loadConfigBackup reads the record of p; ok is false when there is none.
func loadConfigBackup(ctx context.Context, h Host, p string) (rec configBackup, ok bool, err error) {
	f, exists, err := ReadFileIfExists(ctx, h, configBackupPath(p))
	if err != nil || !exists {
		return rec, false, err
	}
	if err := json.Unmarshal(f.Content, &rec); err != nil || rec.Path != p {
		return rec, false, fmt.Errorf("%s is not dindops's backup of %s (%v); move it away", configBackupPath(p), p, err)
	}
	return rec, true, nil
}

// saveConfigBackup records what p holds now (cur; exists false when there
// is no file) before dindops writes next over it. While an earlier record
// is unconfirmed (p still holds what dindops wrote then, and no start of
// the service has proved it good), the earlier content is kept: it is the
// last one known to work.
func saveConfigBackup(ctx context.Context, h Host, p string, cur RemoteFile, exists bool, next []byte) error {
	rec, ok, err := loadConfigBackup(ctx, h, p)
	if err != nil {
		return err
	}
	if !ok || !exists || rec.Written != sha256Hex(cur.Content) {
		rec = configBackup{Version: 1, Path: p, Existed: exists, Content: string(cur.Content),
			Mode: fmt.Sprintf("%04o", cur.Mode.Perm()), Owner: cur.Owner, Group: cur.Group}
	}
	rec.Written, rec.Since = sha256Hex(next), time.Now().UTC()
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if _, err := Exec(ctx, h, "mkdir", "-p", "-m", "0700", ConfigBackupDir); err != nil {
		return err
	}
	if err := h.WriteFile(ctx, configBackupPath(p), append(data, '\n'), WriteOptions{Mode: 0o600, Owner: "root", Group: "root"}); err != nil {
		return fmt.Errorf("keep the previous %s in %s before replacing it: %w", p, configBackupPath(p), err)
	}
	return nil
}

// restoreConfigBackup puts back the content p had before dindops wrote it.
// It returns why it did not when it did not: no record, or p changed since
// dindops wrote it.
func restoreConfigBackup(ctx context.Context, h Host, p string) (string, error) {
	rec, ok, err := loadConfigBackup(ctx, h, p)
	if err != nil {
		return "", err
	}
	if !ok {
		return fmt.Sprintf("no previous %s was kept (%s)", p, configBackupPath(p)), nil
	}
	cur, exists, err := ReadFileIfExists(ctx, h, p)
	if err != nil {
		return "", err
	}
	if !exists || sha256Hex(cur.Content) != rec.Written {
		return fmt.Sprintf("%s changed since dindops wrote it, so it was left as it is", p), nil
	}
	if !rec.Existed {
		_, err = Exec(ctx, h, "rm", "-f", p)
		return "", err
	}
	var mode uint32
	if _, err := fmt.Sscanf(rec.Mode, "%o", &mode); err != nil || mode == 0 {
		mode = 0o644
	}
	return "", h.WriteFile(ctx, p, []byte(rec.Content), WriteOptions{Mode: fs.FileMode(mode), Owner: rec.Owner, Group: rec.Group})
}

// dropConfigBackup forgets the record of p: the service came up with the
// file, which is now the one known to work.
func dropConfigBackup(ctx context.Context, h Host, p string) error {
	_, err := Exec(ctx, h, "rm", "-f", configBackupPath(p))
	return err
}
