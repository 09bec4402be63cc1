"""A tiny Redis (RESP2) on loopback for module tests that need no Docker: one password, and the commands the
kill switch uses (AUTH, CLIENT, PING, GET, SET, DEL). Anything else answers an error."""
import socket
import threading


class FakeRedis:
    def __init__(self, password, user="qt"):
        self.password, self.user = password, user
        self.data, self.auth_attempts = {}, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self):
        self.sock.close()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        authed = False
        with conn, conn.makefile("rb") as stream:
            while True:
                try:
                    command = self._read(stream)
                except (OSError, ValueError):
                    return
                if command is None:
                    return
                name, args = command[0].upper(), command[1:]
                if name == "AUTH":
                    self.auth_attempts.append(args)
                    authed = args in ([self.password], [self.user, self.password])
                    reply = b"+OK\r\n" if authed else b"-WRONGPASS invalid username-password pair\r\n"
                elif not authed:
                    reply = b"-NOAUTH Authentication required.\r\n"
                else:
                    reply = self._answer(name, args)
                conn.sendall(reply)

    def _answer(self, name, args):
        if name == "CLIENT":
            return b"+OK\r\n"
        if name == "PING":
            return b"+PONG\r\n"
        if name == "GET":
            value = self.data.get(args[0])
            return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value.encode()), value.encode())
        if name == "SET":
            self.data[args[0]] = args[1]
            return b"+OK\r\n"
        if name == "DEL":
            return b":%d\r\n" % sum(self.data.pop(key, None) is not None for key in args)
        return b"-ERR unknown command\r\n"

    @staticmethod
    def _read(stream):
        header = stream.readline()
        if not header:
            return None
        if not header.startswith(b"*"):
            raise ValueError(header)
        args = []
        for _ in range(int(header[1:])):
            size = int(stream.readline()[1:])
            args.append(stream.read(size + 2)[:-2].decode())
        return args
