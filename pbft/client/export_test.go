package client

// Queued is how many requests wait in the send queue for to ("" for every replica).
func (c *Client) Queued(to string) int {
	c.batch.mu.Lock()
	defer c.batch.mu.Unlock()
	if q := c.batch.queues[to]; q != nil {
		return len(q.reqs)
	}
	return 0
}
