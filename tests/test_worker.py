def test_request_ids_are_16_hex_digits_and_differ_in_a_forked_child() -> None:
    import os

    from atoll.worker import request_id

    ids = {request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes its next id; the parent draws its own
        os.write(write, request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != request_id()
