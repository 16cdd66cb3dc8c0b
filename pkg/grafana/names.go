package grafana

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/healthrouter/healthrouter/pkg/config"
)

// Markers that tell healthrouter's objects from everyone else's. Only objects
// carrying them are ever updated or deleted.
const (
	// ManagedByLabel=ManagedByValue is set on every rule healthrouter writes
	// and is the matcher of its notification-policy sub-route.
	ManagedByLabel = "managed_by"
	ManagedByValue = "healthrouter"
	// UIDPrefix starts the uid of every rule and contact point it writes.
	UIDPrefix = "hr-"
	// ContactPointPrefix starts the name of every contact point it writes.
	ContactPointPrefix = "healthrouter-"
	// PipelineGroup is the rule group holding the pipeline watchdog.
	PipelineGroup = "healthrouter-pipeline"
)

// Grafana's limits (pkg/util/shortid_generator.go, ngalert store).
const (
	maxUIDLength   = 40
	maxTitleLength = 190
	maxGroupLength = 190
)

// validUID reports whether s is a uid Grafana accepts.
func validUID(s string) bool { return config.ValidUID(s) }

// shortHash is a stable 8-hex-digit digest used to keep derived names unique
// when the readable part had to be shortened or cleaned.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// makeUID joins prefix and name into a valid Grafana uid. When name has
// characters a uid cannot hold, or the result would be too long, the name is
// cleaned and cut and a hash of the original keeps it unique.
func makeUID(prefix, name string) string {
	if uid := prefix + name; validUID(uid) {
		return uid
	}
	h := shortHash(name)
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	clean := b.String()
	room := maxUIDLength - len(prefix) - len(h) - 1
	if room < 0 {
		room = 0
	}
	if len(clean) > room {
		clean = clean[:room]
	}
	return prefix + clean + "-" + h
}

// groupName is the rule group holding a region's rules: the region's own
// name, unless Grafana could not store it as such (too long, a slash that
// would break the group's URL) or it would collide with the pipeline group.
func groupName(region string) string {
	if region != "" && len(region) <= maxGroupLength && !strings.ContainsAny(region, "/\\") &&
		region != PipelineGroup && strings.TrimSpace(region) == region {
		return region
	}
	clean := strings.NewReplacer("/", "_", "\\", "_").Replace(strings.TrimSpace(region))
	h := shortHash(region)
	if len(clean) > maxGroupLength-len(h)-1 {
		clean = truncateUTF8(clean, maxGroupLength-len(h)-1)
	}
	return clean + "-" + h
}

// ruleTitle is the title of a rule of group: the group's name, then what
// tells the group's rules apart (suffix), within Grafana's 190 bytes. A name
// too long for that is cut, never the suffix, and a hash of the whole name
// keeps the titles of regions with a long common prefix apart: Grafana up to
// 11.x refuses two rules with one title in a folder.
func ruleTitle(group, suffix string) string {
	if len(group)+len(suffix) <= maxTitleLength {
		return group + suffix
	}
	h := shortHash(group)
	room := maxTitleLength - len(suffix) - len(h) - 1
	if room < len(h) {
		// A suffix that leaves no room for the name: cut the whole and
		// let the hash of the whole keep it apart.
		whole := group + suffix
		return truncateUTF8(whole, maxTitleLength-len(h)-1) + "-" + shortHash(whole)
	}
	return truncateUTF8(group, room) + "-" + h + suffix
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// watchdogUID is the uid of the pipeline watchdog of the folder healthrouter
// provisions. Rule uids are unique across Grafana's organisation, and each
// instance sharding regions has a folder of its own: a fixed uid would have
// them move one rule between their folders forever.
func watchdogUID(folderUID string) string { return makeUID(UIDPrefix+"watchdog-", folderUID) }

// contactPointName is the receiver name of a routing key.
func contactPointName(key string) string { return ContactPointPrefix + key }

// contactPointUID is the integration uid of a routing key's contact point.
func contactPointUID(key string) string { return makeUID(UIDPrefix+"pd-", key) }
