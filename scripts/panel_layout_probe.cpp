// Probe for issue #2: does a load-time repack of each 4-row f16 tile into one interleaved
// panel ([k/8][4 rows][8], one sequential stream) read cold weights faster than the current
// layout (four row streams, software prefetch 8 rows ahead, as in ops/cpu/gemm_tile.h)?
// Streams 512 MiB of distinct N x K f16 matrices through a single-token matvec, one thread,
// and prints the median GB/s of 5 passes for rows/packed with and without prefetch.
// Build and run (docs/benchmarks.md, "Memory bandwidth"):
//   g++ -O2 -mavx2 -mfma -mf16c -o /tmp/panel_probe scripts/panel_layout_probe.cpp -lpthread
//   /tmp/panel_probe 576 576 1; /tmp/panel_probe 576 1536 1
// (the 2-thread mode starts a std::thread per matrix, which dominates; use 1 thread.)
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <thread>
#include <algorithm>
static inline __m256 ld(const uint16_t* p){return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p));}
static inline float hsum(__m256 v){__m128 a=_mm_add_ps(_mm256_castps256_ps128(v),_mm256_extractf128_ps(v,1));a=_mm_hadd_ps(a,a);a=_mm_hadd_ps(a,a);return _mm_cvtss_f32(a);}
// rows layout, 4 rows per tile, 2 acc sets
void mv_rows(const uint16_t* w,int64_t n,int64_t k,const float* x,float* y,int64_t r0,int64_t r1,bool pf){
  for(int64_t r=r0;r<r1;r+=4){__m256 a[2][4]={};
    for(int64_t i=0;i<k;i+=16){ for(int s=0;s<2;++s){__m256 xv=_mm256_loadu_ps(x+i+8*s);
      for(int j=0;j<4;++j){ if(pf) _mm_prefetch((const char*)(w+(r+8+j)*k+i+8*s),_MM_HINT_T0); a[s][j]=_mm256_fmadd_ps(ld(w+(r+j)*k+i+8*s),xv,a[s][j]);}}}
    for(int j=0;j<4;++j) y[r+j]=hsum(_mm256_add_ps(a[0][j],a[1][j]));}
}
// packed: tile t = [k/8][4][8]
void mv_pack(const uint16_t* w,int64_t n,int64_t k,const float* x,float* y,int64_t r0,int64_t r1,bool pf){
  for(int64_t r=r0;r<r1;r+=4){const uint16_t* p=w+r*k;__m256 a[2][4]={};
    for(int64_t i=0;i<k;i+=16){ for(int s=0;s<2;++s){__m256 xv=_mm256_loadu_ps(x+i+8*s);
      const uint16_t* q=p+(i+8*s)*4; if(pf) _mm_prefetch((const char*)(q+1024),_MM_HINT_T0), _mm_prefetch((const char*)(q+1024+16),_MM_HINT_T0);
      for(int j=0;j<4;++j) a[s][j]=_mm256_fmadd_ps(ld(q+8*j),xv,a[s][j]);}}
    for(int j=0;j<4;++j) y[r+j]=hsum(_mm256_add_ps(a[0][j],a[1][j]));}
}
int main(int argc,char**argv){
  int64_t n=atoi(argv[1]),k=atoi(argv[2]); int th=atoi(argv[3]); int copies=512*1024*1024/(n*k*2);
  std::vector<uint16_t*> ws; for(int c=0;c<copies;++c){auto*p=(uint16_t*)aligned_alloc(64,n*k*2); for(int64_t i=0;i<n*k;++i)p[i]=0x3c00^(i&0xff); ws.push_back(p);}
  std::vector<float> x(k,0.5f),y(n);
  for(int variant=0;variant<4;++variant){ bool pack=variant&1, pf=variant&2;
   std::vector<double> gbs;
   for(int rep=0;rep<5;++rep){auto t0=std::chrono::steady_clock::now();
    for(int c=0;c<copies;++c){ auto f=pack?mv_pack:mv_rows;
      if(th==1) f(ws[c],n,k,x.data(),y.data(),0,n,pf); else {int64_t h=n/2/4*4; std::thread t([&]{f(ws[c],n,k,x.data(),y.data(),h,n,pf);}); f(ws[c],n,k,x.data(),y.data(),0,h,pf); t.join();}}
    double s=std::chrono::duration<double>(std::chrono::steady_clock::now()-t0).count(); gbs.push_back(double(copies)*n*k*2/s/1e9);}
   std::sort(gbs.begin(),gbs.end()); printf("%dx%d th%d %s pf%d: %.1f GB/s\n",(int)n,(int)k,th,pack?"packed":"rows  ",(int)pf,gbs[2]);}
}
