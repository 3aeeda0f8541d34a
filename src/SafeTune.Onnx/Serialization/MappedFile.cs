using System.Buffers;
using System.Runtime.InteropServices;
using System.IO.MemoryMappedFiles;

namespace SafeTune.Onnx;

/// <summary>
/// A file mapped read-only into memory, handing out slices as <see cref="ReadOnlyMemory{T}"/> without copying. The
/// mapping lives as long as any slice does (each slice's memory manager holds it), so tensors read from a large external
/// data file cost address space, not a second copy, and pages the model never touches are never read.
/// </summary>
internal sealed unsafe class MappedFile
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _pointer;

    private MappedFile(MemoryMappedFile file, MemoryMappedViewAccessor view, long length)
    {
        _file = file;
        _view = view;
        Length = length;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p + view.PointerOffset;
    }

    /// <summary>The file's length in bytes.</summary>
    public long Length { get; }

    /// <summary>Maps <paramref name="stream"/>'s file (kept open by the mapping itself).</summary>
    public static MappedFile Open(FileStream stream)
    {
        long length = stream.Length;
        if (length == 0) return new MappedFile(null!, null!, 0);
        var file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        var view = file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        return new MappedFile(file, view, length);
    }

    /// <summary>The bytes [offset, offset + length), which must lie inside the file and fit one span.</summary>
    public ReadOnlyMemory<byte> Slice(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Length - length) throw new ArgumentOutOfRangeException(nameof(offset));
        if (length == 0) return ReadOnlyMemory<byte>.Empty;
        if (length > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(length), "a slice must be under 2 GiB.");
        GC.KeepAlive(_file);
        return new Manager(this, _pointer + offset, (int)length).Memory;
    }

    /// <summary>
    /// Advises the system that the whole pages inside <paramref name="memory"/> (a slice of a mapped file) are not needed
    /// now; read-only file pages are simply dropped and read again on the next touch. False when the memory is not a
    /// mapped slice or the platform has no such advice.
    /// </summary>
    public static bool Release(ReadOnlyMemory<byte> memory)
    {
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())) return false;
        if (!MemoryMarshal.TryGetMemoryManager<byte, Manager>(memory, out var manager, out int start, out int length)) return false;
        long page = Environment.SystemPageSize;
        long from = (long)manager.Pointer + start, to = from + length;
        long first = (from + page - 1) / page * page, last = to / page * page;
        if (last <= first) return true;
        return Madvise((IntPtr)first, (nuint)(last - first), DontNeed) == 0;
    }

    private const int DontNeed = 4; // MADV_DONTNEED on Linux and macOS

    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int Madvise(IntPtr address, nuint length, int advice);

    ~MappedFile()
    {
        // The view handle releases itself; this only returns the pointer reference taken in the constructor.
        if (_view is not null && !_view.SafeMemoryMappedViewHandle.IsClosed) _view.SafeMemoryMappedViewHandle.ReleasePointer();
    }

    private sealed class Manager(MappedFile owner, byte* pointer, int length) : MemoryManager<byte>
    {
        // Keeps the mapping alive for as long as this slice is reachable.
        private readonly MappedFile _owner = owner;

        public byte* Pointer => pointer;

        public override Span<byte> GetSpan() => new(pointer, length);

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            GC.KeepAlive(_owner);
            return new MemoryHandle(pointer + elementIndex);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }
}
