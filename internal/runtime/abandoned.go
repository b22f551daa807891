package runtime

// RemoveAbandoned removes the directories that creates killed before they claimed their id
// left in the state root, as List does on its way, without reading every container's
// state. The engine calls it when it takes over a start whose berth was killed.
func (r *Runtime) RemoveAbandoned() {
	r.ids()
}
