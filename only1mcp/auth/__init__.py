"""Who a request comes from: credentials checked at the door, the principal they prove."""
