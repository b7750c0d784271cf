package bus

import (
	"net/url"
	"strings"
)

// RedactURLs hides the passwords of a comma-separated NATS URL list, for logs and errors:
// with NATS authorization PBFT_NATS_URL carries the replica's credentials.
func RedactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		switch {
		case err != nil:
			if strings.Contains(p, "@") {
				parts[i] = "(unparsable URL with credentials)"
			}
		case u.User != nil:
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}
