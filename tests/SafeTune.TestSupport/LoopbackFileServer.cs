using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SafeTune.TestSupport;

/// <summary>One GET received by a <see cref="LoopbackFileServer"/>: the path and the Range header, if any.</summary>
public sealed record FileRequest(string Path, string? Range);

/// <summary>
/// A static file server on 127.0.0.1 over a raw socket: GET <c>/PATH</c> answers the file <c>ROOT/PATH</c> (404 when
/// there is none), honours <c>Range: bytes=N-</c> with 206, and closes each connection after the response. Faults for
/// tests: <see cref="Replace"/> serves other bytes for a path, <see cref="CutAfter"/> sends only the first bytes of a
/// body (with the full Content-Length) and then drops the connection.
/// </summary>
public sealed class LoopbackFileServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly string _root;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<FileRequest> _received = new();
    private readonly ConcurrentBag<Task> _connections = [];
    private readonly Task _accept;

    private LoopbackFileServer(string root)
    {
        _root = Path.GetFullPath(root);
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accept = Task.Run(AcceptAsync);
    }

    /// <summary>Starts a server for the files under <paramref name="root"/>.</summary>
    public static LoopbackFileServer Start(string root) => new(root);

    /// <summary>Bytes to serve instead of the file, by request path (e.g. <c>/advbench/harmful_behaviors.csv</c>).</summary>
    public ConcurrentDictionary<string, byte[]> Replace { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// For the n-th request (from 0) that answers a body, how many body bytes to send before dropping the connection;
    /// absent requests are served whole.
    /// </summary>
    public Func<int, int?> CutAfter { get; set; } = _ => null;

    /// <summary><c>http://127.0.0.1:PORT</c>.</summary>
    public string BaseUrl => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>The requests received, in arrival order.</summary>
    public IReadOnlyList<FileRequest> Received => [.. _received];

    private int _bodies;

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }
            _connections.Add(Task.Run(() => ServeAsync(client)));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var (path, range) = await ReadRequestAsync(stream, _stop.Token);
                if (path is null) return;
                _received.Enqueue(new FileRequest(path, range));
                var file = Path.GetFullPath(Path.Combine(_root, Uri.UnescapeDataString(path.TrimStart('/'))));
                byte[]? content = Replace.TryGetValue(path, out var r) ? r
                    : file.StartsWith(_root, StringComparison.Ordinal) && File.Exists(file) ? await File.ReadAllBytesAsync(file, _stop.Token) : null;
                if (content is null)
                {
                    await WriteAsync(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", ReadOnlyMemory<byte>.Empty);
                    return;
                }
                long from = 0;
                if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
                    from = long.Parse(range["bytes=".Length..^1], CultureInfo.InvariantCulture);
                if (from >= content.Length && from > 0)
                {
                    await WriteAsync(stream, $"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{content.Length}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", ReadOnlyMemory<byte>.Empty);
                    return;
                }
                var body = content.AsMemory((int)from);
                var head = from > 0
                    ? $"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{content.Length - 1}/{content.Length}\r\n"
                    : "HTTP/1.1 200 OK\r\n";
                head += $"Content-Type: application/octet-stream\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n";
                int index = Interlocked.Increment(ref _bodies) - 1;
                if (CutAfter(index) is { } cut && cut < body.Length)
                {
                    await WriteAsync(stream, head, body[..cut]);
                    client.Client.LingerState = new LingerOption(true, 0); // a reset, as a broken transfer looks
                    return;
                }
                await WriteAsync(stream, head, body);
                client.Client.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    private async Task WriteAsync(NetworkStream stream, string head, ReadOnlyMemory<byte> body)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), _stop.Token);
        await stream.WriteAsync(body, _stop.Token);
        await stream.FlushAsync(_stop.Token);
    }

    private static async Task<(string? Path, string? Range)> ReadRequestAsync(NetworkStream stream, CancellationToken token)
    {
        var data = new StringBuilder();
        var buffer = new byte[4096];
        while (!data.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            int n = await stream.ReadAsync(buffer, token);
            if (n == 0) return (null, null);
            data.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        var lines = data.ToString().Split("\r\n");
        var start = lines[0].Split(' ');
        string? range = lines.Skip(1).Where(l => l.StartsWith("Range:", StringComparison.OrdinalIgnoreCase)).Select(l => l["Range:".Length..].Trim()).FirstOrDefault();
        return (start.Length > 1 ? start[1] : "/", range);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _accept; } catch (OperationCanceledException) { }
        try { await Task.WhenAll(_connections).WaitAsync(TimeSpan.FromSeconds(5)); } catch (TimeoutException) { }
        _listener.Dispose();
        _stop.Dispose();
    }
}
