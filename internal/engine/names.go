package engine

import (
	"math/rand/v2"
	"strconv"
)

// A container created without --name gets an "adjective_noun" name, as on Docker. The
// words are berth's own: seafaring ones.
var (
	nameAdjectives = []string{
		"able", "amber", "ancient", "azure", "brave", "brisk", "calm", "clever", "coastal",
		"crisp", "daring", "deep", "eager", "fair", "fleet", "gentle", "golden", "hardy",
		"hidden", "humble", "jolly", "keen", "lively", "loyal", "lucky", "misty", "nimble",
		"noble", "patient", "proud", "quiet", "rapid", "restless", "salty", "serene", "silent",
		"silver", "steady", "stormy", "sturdy", "sunny", "swift", "tidal", "tranquil", "trusty",
		"vivid", "wandering", "weathered", "windy", "wise",
	}
	nameNouns = []string{
		"anchor", "barge", "beacon", "bosun", "buoy", "cabin", "capstan", "cargo", "coracle",
		"cove", "current", "cutter", "dinghy", "dock", "dory", "ferry", "fjord", "galley",
		"gull", "harbor", "hawser", "helm", "hull", "inlet", "jetty", "junk", "keel", "ketch",
		"lagoon", "lighthouse", "mast", "mooring", "narwhal", "oar", "pier", "pilot", "quay",
		"reef", "rudder", "schooner", "sextant", "shoal", "skiff", "sloop", "squall", "tern",
		"tide", "trawler", "wharf", "yawl",
	}
)

// randomName returns a generated name; after a collision (retry > 0) a number is added.
func randomName(retry int) string {
	n := nameAdjectives[rand.IntN(len(nameAdjectives))] + "_" + nameNouns[rand.IntN(len(nameNouns))]
	if retry > 0 {
		n += strconv.Itoa(rand.IntN(10 * retry))
	}
	return n
}
