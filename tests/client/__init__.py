"""The clients: requests checked and priced, answers read, errors, retries, images, the balance."""
