package tasks

// RegistryVerdict is classifyRegistryAnswer's verdict as a word: "found",
// "missing" or "unknown" (tests only).
func RegistryVerdict(err error, withAuth bool) string {
	switch classifyRegistryAnswer(err, withAuth) {
	case imageInRegistry:
		return "found"
	case imageNotThere:
		return "missing"
	}
	return "unknown"
}

// HubRef and ImageDomain are hubRef and imageDomain (tests only).
var (
	HubRef      = hubRef
	ImageDomain = imageDomain
)
