using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SafeTune.TestSupport;

/// <summary>One HTTP request received by a <see cref="LoopbackHttpServer"/>.</summary>
/// <param name="Method">The method.</param>
/// <param name="Path">The request target.</param>
/// <param name="Headers">The headers (names case-insensitive; repeated headers joined with a comma).</param>
/// <param name="Body">The body as UTF-8 text.</param>
public sealed record LoopbackRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, string Body);

/// <summary>What a <see cref="LoopbackHttpServer"/> answers.</summary>
/// <param name="Status">The HTTP status.</param>
/// <param name="Body">The body text.</param>
/// <param name="ContentType">The content type.</param>
/// <param name="Headers">More headers, e.g. <c>Retry-After</c>.</param>
public sealed record LoopbackResponse(int Status, string Body, string ContentType = "application/json", IReadOnlyDictionary<string, string>? Headers = null)
{
    /// <summary>A chat completion whose assistant message is <paramref name="content"/>.</summary>
    public static LoopbackResponse Chat(string content) => new(200, System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["id"] = "chatcmpl-test",
        ["object"] = "chat.completion",
        ["created"] = 1_700_000_000,
        ["model"] = "test-judge",
        ["choices"] = new object[]
        {
            new Dictionary<string, object?>
            {
                ["index"] = 0,
                ["message"] = new Dictionary<string, object> { ["role"] = "assistant", ["content"] = content },
                ["finish_reason"] = "stop",
            },
        },
        ["usage"] = new Dictionary<string, int> { ["prompt_tokens"] = 1, ["completion_tokens"] = 1, ["total_tokens"] = 2 },
    }));
}

/// <summary>
/// A minimal HTTP/1.1 server on 127.0.0.1 over a raw socket, for tests that need a misbehaving endpoint: the handler
/// sees every request (with its index, from 0) and returns the response, or null to never answer (the connection is
/// held open until the client gives up or the server is disposed). Each response closes its connection.
/// </summary>
public sealed class LoopbackHttpServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<LoopbackRequest, int, LoopbackResponse?> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<LoopbackRequest> _received = new();
    private readonly ConcurrentBag<Task> _connections = [];
    private readonly Task _accept;
    private int _count;

    private LoopbackHttpServer(Func<LoopbackRequest, int, LoopbackResponse?> handler)
    {
        _handler = handler;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accept = Task.Run(AcceptAsync);
    }

    /// <summary>Starts a server that answers with <paramref name="handler"/>.</summary>
    public static LoopbackHttpServer Start(Func<LoopbackRequest, int, LoopbackResponse?> handler) => new(handler);

    /// <summary>The port.</summary>
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary><c>http://127.0.0.1:PORT/v1</c>.</summary>
    public Uri BaseUrl => new($"http://127.0.0.1:{Port}/v1");

    /// <summary>How many requests arrived.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>The requests received, in arrival order.</summary>
    public IReadOnlyList<LoopbackRequest> Received => [.. _received];

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
                var request = await ReadRequestAsync(stream, _stop.Token);
                if (request is null) return;
                _received.Enqueue(request);
                int index = Interlocked.Increment(ref _count) - 1;
                var response = _handler(request, index);
                if (response is null)
                {
                    // Never answer: wait until the client closes the connection or the server stops.
                    var sink = new byte[256];
                    while (await stream.ReadAsync(sink, _stop.Token) > 0) { }
                    return;
                }
                var body = Encoding.UTF8.GetBytes(response.Body);
                var head = new StringBuilder()
                    .Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {response.Status} {Reason(response.Status)}\r\n")
                    .Append(CultureInfo.InvariantCulture, $"Content-Type: {response.ContentType}\r\n")
                    .Append(CultureInfo.InvariantCulture, $"Content-Length: {body.Length}\r\n")
                    .Append("Connection: close\r\n");
                foreach (var (k, v) in response.Headers ?? new Dictionary<string, string>()) head.Append(CultureInfo.InvariantCulture, $"{k}: {v}\r\n");
                head.Append("\r\n");
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), _stop.Token);
                await stream.WriteAsync(body, _stop.Token);
                await stream.FlushAsync(_stop.Token);
                client.Client.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    private static async Task<LoopbackRequest?> ReadRequestAsync(NetworkStream stream, CancellationToken token)
    {
        var data = new List<byte>();
        var buffer = new byte[8192];
        int headerEnd;
        while ((headerEnd = IndexOf(data, "\r\n\r\n"u8)) < 0)
        {
            int n = await stream.ReadAsync(buffer, token);
            if (n == 0) return null;
            data.AddRange(buffer.AsSpan(0, n));
        }
        var lines = Encoding.ASCII.GetString([.. data.Take(headerEnd)]).Split("\r\n");
        var start = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var name = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            headers[name] = headers.TryGetValue(name, out var old) ? old + ", " + value : value;
        }
        var rest = data.Skip(headerEnd + 4).ToList();
        byte[] body;
        if (headers.TryGetValue("Content-Length", out var length))
        {
            int want = int.Parse(length, CultureInfo.InvariantCulture);
            while (rest.Count < want)
            {
                int n = await stream.ReadAsync(buffer, token);
                if (n == 0) break;
                rest.AddRange(buffer.AsSpan(0, n));
            }
            body = [.. rest.Take(want)];
        }
        else if (headers.TryGetValue("Transfer-Encoding", out var te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            while (IndexOf(rest, "0\r\n\r\n"u8) < 0)
            {
                int n = await stream.ReadAsync(buffer, token);
                if (n == 0) break;
                rest.AddRange(buffer.AsSpan(0, n));
            }
            body = Dechunk([.. rest]);
        }
        else body = [];
        return new LoopbackRequest(start[0], start.Length > 1 ? start[1] : "/", headers, Encoding.UTF8.GetString(body));
    }

    private static byte[] Dechunk(byte[] data)
    {
        var result = new List<byte>();
        int i = 0;
        while (i < data.Length)
        {
            int eol = Array.IndexOf(data, (byte)'\r', i);
            if (eol < 0) break;
            int size = int.Parse(Encoding.ASCII.GetString(data, i, eol - i).Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0) break;
            result.AddRange(data.AsSpan(eol + 2, size));
            i = eol + 2 + size + 2;
        }
        return [.. result];
    }

    private static int IndexOf(List<byte> data, ReadOnlySpan<byte> pattern)
    {
        for (int i = 0; i + pattern.Length <= data.Count; i++)
        {
            int k = 0;
            while (k < pattern.Length && data[i + k] == pattern[k]) k++;
            if (k == pattern.Length) return i;
        }
        return -1;
    }

    private static string Reason(int status) => status switch
    {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };

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
